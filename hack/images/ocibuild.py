#!/usr/bin/env python3
"""Run the registry-free image builder, kubehatch.imagebuild, from a checkout.

The builder lives in the SDK (so `kubehatch image build` has it) and uses only the
standard library; this shim imports it as a top-level package, without the rest of
kubehatch, so the cluster scripts need nothing but python3.
"""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk" / "kubehatch"))
runpy.run_module("imagebuild", run_name="__main__", alter_sys=True)
