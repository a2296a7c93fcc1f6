"""Fixtures for the SDK tests."""

from __future__ import annotations

import pytest

from kubehatch import Worker


@pytest.fixture
def worker() -> Worker:
    """An empty worker with an image, so workflows need none of their own."""
    return Worker("test-worker", image="img:1")
