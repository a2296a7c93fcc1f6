"""Concurrency admission: which waiting runs of a workflow may start, wait or be cancelled.

A pure function over the workflow's unfinished runs, each with its concurrency key.
Every key is a group of its own: `maxRuns` (or the key's dynamic limit) counts the runs
of one key, whatever the strategy. `maxRunsTotal`, when set, caps the runs of all keys
together; its free slots go to the keys in turn with GroupRoundRobin, in queue order
otherwise.

- CancelInProgress (the default, as in Hatchet): the newest runs win; the oldest running
  runs of the key are cancelled to make room.
- CancelNewest: the running runs win; new runs over the limit are cancelled.
- QueueNewest: new runs over the limit wait (phase Queued) and start in queue order.
- GroupRoundRobin: as QueueNewest per key; with maxRunsTotal, keys take turns.
- CancelQueuedExceptNewest / CancelQueuedExceptOldest (debounce): as QueueNewest, but a
  key keeps one waiting run only, the newest or the oldest; the others are cancelled.

Queue order: the higher priority first, then arrival (creation time, then the order the
operator saw the runs in, then the name). Debounce keeps the outcome the runs would have
had arriving one at a time: the oldest start while there is room, then one waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from operator import attrgetter

from kubehatch.api.workflow import MIN_PRIORITY, ConcurrencySpec, LimitStrategy


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
    priority: int | None = None
    """1 (low) to 3 (high); None takes the workflow's default."""
    limit: int | None = None
    """The run's own limit for its key (maxRunsExpression), when the workflow has one."""
    started_at: datetime | None = None

    @cached_property
    def rank(self) -> tuple[float, int, str]:
        """Arrival order, oldest first; computed once (the store keeps each run's
        contender between passes)."""
        return (self.created.timestamp(), self.arrival, self.name)


@dataclass(frozen=True)
class Policy:
    """A workflow's concurrency limit, as admission applies it."""

    strategy: LimitStrategy = LimitStrategy.CANCEL_IN_PROGRESS
    max_runs: int = 1
    max_runs_total: int | None = None
    default_priority: int = MIN_PRIORITY

    @property
    def per_key(self) -> bool:
        """Whether keys share no slots (no maxRunsTotal)."""
        return self.max_runs_total is None

    @classmethod
    def of(cls, concurrency: ConcurrencySpec, default_priority: int | None = None) -> Policy:
        return cls(
            concurrency.limit_strategy,
            concurrency.max_runs,
            concurrency.max_runs_total,
            default_priority or MIN_PRIORITY,
        )


@dataclass
class Admission:
    start: list[str] = field(default_factory=list)
    """Runs that may start now, in the order they were handed their slots."""
    queue: list[str] = field(default_factory=list)
    """Runs that wait, in the order they would start."""
    cancel: list[str] = field(default_factory=list)
    """Runs to cancel: running ones (CancelInProgress) or waiting ones (the others)."""
    served: str | None = None
    """The key that took the last slot handed out (GroupRoundRobin's turn goes on after it)."""


_ARRIVAL = attrgetter("rank")


def admit(runs: Sequence[Contender], policy: Policy, served: str | None = None) -> Admission:
    """The verdicts on ``runs``. ``served`` is the key that took the last slot before
    (round robin goes on after it); without it, the key of the run started last."""
    by_key: dict[str, list[Contender]] = {}
    for run in sorted(runs, key=_ARRIVAL):
        by_key.setdefault(run.key, []).append(run)
    if policy.strategy is LimitStrategy.CANCEL_IN_PROGRESS:
        return _newest_win(by_key, policy)
    result = Admission(served=served)
    room: dict[str, int] = {}
    queues: dict[str, deque[Contender]] = {}
    default = policy.default_priority

    def queue_rank(run: Contender) -> tuple[int, tuple[float, int, str]]:
        return (-(run.priority or default), run.rank)

    priorities: set[int] = set()
    for key, everyone in by_key.items():
        running = sum(r.running for r in everyone)
        room[key] = max(_limit(everyone, policy) - running, 0)
        waiting = [r for r in everyone if not r.running and not r.leaving]
        if not waiting:
            continue
        mine = {r.priority or default for r in waiting}
        if len(mine) > 1:
            # A stable sort by priority keeps the arrival order within each priority.
            waiting.sort(key=lambda r: -(r.priority or default))
        priorities |= mine
        queues[key] = deque(waiting)
    if policy.strategy is LimitStrategy.CANCEL_NEWEST:
        for key, queue in queues.items():
            ordered = list(queue)
            result.start += [r.name for r in ordered[: room[key]]]
            result.cancel += [r.name for r in ordered[room[key] :]]
        return result
    ranked = len(priorities) > 1
    total = (
        max(policy.max_runs_total - sum(r.running for r in runs), 0)
        if policy.max_runs_total is not None
        else len(runs)
    )
    round_robin = policy.strategy is LimitStrategy.GROUP_ROUND_ROBIN and not policy.per_key
    turns = _Turns(queue_rank, round_robin, served if served is not None else _started_last(runs))
    # Hand out the free slots, then order the rest as they would be served.
    while total and (ready := [k for k in queues if queues[k] and room[k]]):
        key = turns.next(ready, queues)
        result.start.append(queues[key].popleft().name)
        room[key] -= 1
        total -= 1
        result.served = key
    if policy.strategy in (
        LimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST,
        LimitStrategy.CANCEL_QUEUED_EXCEPT_OLDEST,
    ):
        _debounce(queues, policy.strategy, result)
    result.queue = [run.name for run in _rest(queues, turns, ranked, queue_rank)]
    return result


def _rest(
    queues: dict[str, deque[Contender]],
    turns: _Turns,
    ranked: bool,
    queue_rank: Callable[[Contender], tuple[int, tuple[float, int, str]]],
) -> list[Contender]:
    """The runs left waiting, in the order they would start (in one pass over them when
    priorities do not interleave the keys' turns)."""
    left = {key: runs for key, runs in queues.items() if runs}
    if not left:
        return []
    if not turns.round_robin:
        merged = [run for runs in left.values() for run in runs]
        if len(left) > 1:
            merged.sort(key=queue_rank)
        return merged
    if not ranked:
        # Keys in turn after the last one served, a run from each per round.
        keys = sorted(left)
        if turns.turn is not None:
            cut = next((i for i, k in enumerate(keys) if k > turns.turn), len(keys))
            keys = keys[cut:] + keys[:cut]
        else:
            first = min(keys, key=lambda k: queue_rank(left[k][0]))
            keys = keys[keys.index(first) :] + keys[: keys.index(first)]
        rounds = max(len(runs) for runs in left.values())
        return [left[k][i] for i in range(rounds) for k in keys if i < len(left[k])]
    order: list[Contender] = []
    while rest := [k for k in left if left[k]]:
        order.append(left[turns.next(rest, left)].popleft())
    return order


def key_limit_of(runs: Sequence[Contender], policy: Policy) -> int:
    """The limit of one key's runs (in any order): its newest run's own, else maxRuns."""
    return _limit(sorted(runs, key=_ARRIVAL), policy)


def _limit(everyone: Sequence[Contender], policy: Policy) -> int:
    """The key's limit (its runs in arrival order): its newest run's own (a dynamic
    limit), else maxRuns."""
    for run in reversed(everyone):
        if not run.leaving and run.limit is not None:
            return run.limit
    return policy.max_runs


def _newest_win(by_key: dict[str, list[Contender]], policy: Policy) -> Admission:
    result = Admission()
    for everyone in by_key.values():
        group = [r for r in everyone if not r.leaving]
        cut = max(len(group) - _limit(everyone, policy), 0)  # the newest `limit` stay
        result.start += [r.name for r in group[cut:] if not r.running]
        result.cancel += [r.name for r in group[:cut]]
    return result


def _debounce(
    queues: dict[str, deque[Contender]], strategy: LimitStrategy, result: Admission
) -> None:
    """Keep one waiting run per key: the newest to arrive, or the first in the queue."""
    for key, waiting in queues.items():
        if len(waiting) < 2:
            continue
        if strategy is LimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST:
            kept = max(waiting, key=_ARRIVAL)
        else:
            kept = waiting[0]
        result.cancel += [r.name for r in waiting if r is not kept]
        queues[key] = deque([kept])


@dataclass
class _Turns:
    """Which key's first waiting run takes the next slot."""

    queue_rank: Callable[[Contender], tuple[int, tuple[float, int, str]]]
    round_robin: bool
    """Keys in turn, in the order of their names, after the key served last; else the
    first run in queue order, whatever its key."""
    turn: str | None

    def next(self, keys: list[str], queues: Mapping[str, Sequence[Contender]]) -> str:
        def head(key: str) -> tuple[int, tuple[float, int, str]]:
            return self.queue_rank(queues[key][0])

        if not self.round_robin or self.turn is None:
            key = min(keys, key=head)
        else:
            # A higher priority goes first; keys of the same take turns.
            top = min(head(k)[0] for k in keys)
            keys = [k for k in keys if head(k)[0] == top]
            key = min((k for k in keys if k > self.turn), default=min(keys))
        self.turn = key
        return key


def _started_last(runs: Sequence[Contender]) -> str | None:
    """The key of the run that started last: where round robin resumes after a restart."""
    started = [r for r in runs if r.running and r.started_at is not None]
    if not started:
        return None
    return max(started, key=lambda r: (r.started_at, r.rank)).key
