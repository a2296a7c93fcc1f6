"""Which finished runs to delete: past the Workflow's TTL, or beyond its history limit.

A pure function over (name, finished time) pairs, so that every boundary is tested
without a cluster. Deletion cascades to each run's Jobs, pods and ConfigMaps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class FinishedRun:
    name: str
    workflow: str
    finished_at: datetime
    version: int = 0
    """The resourceVersion at which it was seen finished: a relisting taken later that
    lacks it tells that it went."""


@dataclass(frozen=True)
class Sweep:
    delete: list[str]
    next_at: datetime | None
    """When the next run's TTL runs out (None: no TTL, or nothing left to expire)."""


def sweep(
    runs: Iterable[FinishedRun], ttl_seconds: int | None, history_limit: int | None, now: datetime
) -> Sweep:
    newest_first = sorted(runs, key=lambda r: (r.finished_at, r.name), reverse=True)
    delete: set[str] = set()
    if history_limit is not None:
        delete.update(r.name for r in newest_first[history_limit:])
    next_at = None
    if ttl_seconds is not None:
        ttl = timedelta(seconds=ttl_seconds)
        for run in newest_first:
            expires = run.finished_at + ttl
            if expires <= now:
                delete.add(run.name)
            elif run.name not in delete:
                next_at = expires if next_at is None else min(next_at, expires)
    return Sweep(delete=sorted(delete), next_at=next_at)
