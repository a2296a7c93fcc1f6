"""Shared fixtures for the unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # so that tests can import the examples/ package
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def repo_root() -> Path:
    """The repository's top directory."""
    return ROOT
