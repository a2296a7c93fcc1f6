#!/usr/bin/env python3
"""Run the registry-free image builder, kubehatch.imagebuild, from a checkout.

The builder lives in the SDK (so `kubehatch image build` has it) and uses only the
standard library; this shim runs it by path, without importing the rest of kubehatch,
so the cluster scripts need nothing but python3.
"""

import runpy
from pathlib import Path

runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "sdk" / "kubehatch" / "imagebuild.py"),
    run_name="__main__",
)
