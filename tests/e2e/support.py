"""Helpers shared by e2e tests: the images the harness builds, and waiting with a deadline."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
# A fixed tag that both the local builder and `make kind-up` give the Python base image.
BASE_IMAGE = "localhost/kubehatch/python-base:bookworm"

T = TypeVar("T")


def pinned_kubernetes_version() -> str | None:
    """The version pinned in hack/versions.env (only the local cluster is known to match it)."""
    for line in (REPO_ROOT / "hack" / "versions.env").read_text().splitlines():
        if line.startswith("KUBERNETES_VERSION="):
            return line.split("=", 1)[1].strip()
    return None


def wait_for(probe: Callable[[], T | bool | None], timeout: float, what: str) -> T:
    """Poll `probe` (with a short back-off) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        result = probe()
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def kubehatch(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``kubehatch`` CLI as a user would, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "kubehatch.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
