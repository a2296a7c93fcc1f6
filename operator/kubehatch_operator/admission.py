"""Concurrency admission: which waiting runs of a workflow may start, wait or be cancelled.

A pure function over the workflow's unfinished runs, each with its concurrency key.
`maxRuns` counts runs per key, except with GroupRoundRobin, where it is the workflow's
total and free slots go to the keys in turn (oldest run first within a key), so that
one busy key cannot starve the others.

- CancelInProgress (the default, as in Hatchet): the newest runs win; the oldest running
  runs of the key are cancelled to make room.
- CancelNewest: the running runs win; new runs over the limit are cancelled.
- QueueNewest: new runs over the limit wait (phase Queued) and start in arrival order.
- GroupRoundRobin: runs over the limit wait; slots are handed out across keys in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from operator import attrgetter

from kubehatch.api.workflow import LimitStrategy


@dataclass(frozen=True)
class Contender:
    """One unfinished run of the workflow."""

    name: str
    key: str
    created: datetime
    running: bool
    """Started, or has Jobs still running (holds a slot); else waiting to start."""
    arrival: int = 0
    """Breaks ties of `created` (one-second resolution) by order of arrival."""
    leaving: bool = False
    """Cancelled: holds its slot while its pods stop, and never pushes another run out."""

    @cached_property
    def rank(self) -> tuple[float, int, str]:
        """Arrival order, oldest first; computed once (the store keeps each run's
        contender between passes)."""
        return (self.created.timestamp(), self.arrival, self.name)


@dataclass
class Admission:
    start: list[str] = field(default_factory=list)
    queue: list[str] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    """Runs to cancel: running ones (CancelInProgress) or waiting ones (CancelNewest)."""


_ARRIVAL = attrgetter("rank")


def _order(runs: Sequence[Contender]) -> list[Contender]:
    return sorted(runs, key=_ARRIVAL)


def admit(runs: Sequence[Contender], max_runs: int, strategy: LimitStrategy) -> Admission:
    if strategy is LimitStrategy.GROUP_ROUND_ROBIN:
        return _round_robin(runs, max_runs)
    result = Admission()
    by_key: dict[str, list[Contender]] = {}
    for run in _order(runs):
        by_key.setdefault(run.key, []).append(run)
    for everyone in by_key.values():
        group = [r for r in everyone if not r.leaving]
        running = [r for r in everyone if r.running]
        waiting = [r for r in group if not r.running]
        if strategy is LimitStrategy.CANCEL_IN_PROGRESS:
            # Keep the newest max_runs of the key, whether running or not.
            keep = group[-max_runs:]
            result.start += [r.name for r in waiting if r in keep]
            result.cancel += [r.name for r in group if r not in keep]
            continue
        free = max(max_runs - len(running), 0)
        result.start += [r.name for r in waiting[:free]]
        rest = [r.name for r in waiting[free:]]
        if strategy is LimitStrategy.CANCEL_NEWEST:
            result.cancel += rest
        else:
            result.queue += rest
    return result


def _round_robin(runs: Sequence[Contender], max_runs: int) -> Admission:
    result = Admission()
    free = max(max_runs - sum(r.running for r in runs), 0)
    queues: dict[str, list[Contender]] = {}
    for run in _order(runs):
        if not run.running and not run.leaving:
            queues.setdefault(run.key, []).append(run)
    # Keys take turns in the order of their oldest waiting run.
    turn = sorted(queues, key=lambda k: _ARRIVAL(queues[k][0]))
    while free and any(queues[k] for k in turn):
        for key in turn:
            if free and queues[key]:
                result.start.append(queues[key].pop(0).name)
                free -= 1
    result.queue = [r.name for k in turn for r in queues[k]]
    return result
