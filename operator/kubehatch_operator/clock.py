"""The operator's one clock: every decision is made against ``now()`` in UTC.

Pure modules never call it; they are handed the time, so tests choose it.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
