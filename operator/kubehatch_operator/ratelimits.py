"""Rate limits: the units step attempts took per key, and whether one more attempt fits.

A limit allows `limit` units in any window of `duration` (a sliding log, so the limit
holds over every window, not only over aligned ones). Every attempt that takes units is
a Job carrying them in an annotation, so the log is rebuilt from the Jobs listed after a
restart, with no state of its own to write. A Job deleted with its run before its window
ends is forgotten by a restart: the limit may then let that many more units through once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.cel import key_of
from kubehatch.api.queueing import MAX_RATE_WINDOW, RateLimitSpec
from kubehatch.api.workflow import StepSpec
from kubehatch_operator.model import Run

Bucket = tuple[str, str]
"""(namespace, key): every step of the namespace naming the key shares its units."""

HORIZON = MAX_RATE_WINDOW
"""The longest window a limit may have: older units are dropped."""

TURN = timedelta(seconds=1)
"""How long an attempt that fits steps back for an earlier waiting one that is due."""
GRACE = timedelta(seconds=5)
"""An attempt that has not asked again this long after it was due is no longer waited
for (its run was cancelled, or went)."""


@dataclass(frozen=True)
class Hold:
    """An attempt that does not fit yet: when it may, and why it waits."""

    until: datetime
    message: str


@dataclass(frozen=True)
class Refused:
    """An attempt whose key cannot be computed: its step fails, saying why."""

    message: str


@dataclass
class _Waiter:
    since: datetime
    """When it was first held."""
    until: datetime
    """When it asks again."""


class RateLog:
    """Units taken per bucket, by the Job that took them; and the attempts waiting, so
    that a freed unit goes to the one that has waited longest."""

    def __init__(self) -> None:
        self._taken: dict[Bucket, dict[str, tuple[datetime, int]]] = {}
        self._waiting: dict[Bucket, dict[str, _Waiter]] = {}

    def wait(self, bucket: Bucket, job: str, until: datetime, now: datetime) -> None:
        waiters = self._waiting.setdefault(bucket, {})
        known = waiters.get(job)
        waiters[job] = _Waiter(known.since if known else now, until)

    def ahead(self, bucket: Bucket, job: str, now: datetime) -> int:
        """How many attempts held before ``job`` are due now, and so go first."""
        waiters = self._waiting.get(bucket)
        if not waiters:
            return 0
        for gone in [j for j, w in waiters.items() if now > w.until + GRACE]:
            del waiters[gone]
        mine = waiters.get(job)
        since = mine.since if mine is not None else now
        return sum(
            1
            for other, w in waiters.items()
            if other != job and w.since < since and w.until <= now + TURN
        )

    def done_waiting(self, bucket: Bucket, job: str) -> None:
        waiters = self._waiting.get(bucket)
        if waiters is not None:
            waiters.pop(job, None)
            if not waiters:
                del self._waiting[bucket]

    def record(self, namespace: str, job: str, at: datetime, takes: list[tuple[str, int]]) -> None:
        for key, units in takes:
            self._taken.setdefault((namespace, key), {})[job] = (at, units)

    def observe_job(self, body: dict[str, Any]) -> None:
        """Rebuild from a listed or watched Job: the units it took, at its creation."""
        meta = body.get("metadata") or {}
        raw = (meta.get("annotations") or {}).get(wire.ANNOTATION_RATE_LIMITS)
        created = wire.parse_time(meta.get("creationTimestamp"))
        if raw is None or created is None:
            return
        try:
            takes = [(str(key), int(units)) for key, units in json.loads(raw)]
        except (ValueError, TypeError):
            return  # not ours to judge: a Job edited by hand takes nothing
        bucket_jobs = [self._taken.get((meta["namespace"], key), {}) for key, _ in takes]
        if any(meta["name"] in jobs for jobs in bucket_jobs):
            return  # taken by this process already, at the time it decided
        self.record(meta["namespace"], meta["name"], created, takes)

    def used(self, bucket: Bucket, window: timedelta, now: datetime) -> list[tuple[datetime, int]]:
        """The units taken in the window ending now, oldest first (older ones are dropped
        once past the horizon)."""
        taken = self._taken.get(bucket)
        if not taken:
            return []
        for job in [j for j, (at, _) in taken.items() if at <= now - HORIZON]:
            del taken[job]
        if not taken:
            del self._taken[bucket]
            return []
        return sorted(v for v in taken.values() if v[0] > now - window)

    def buckets(self) -> int:
        return len(self._taken)


def free_at(
    used: list[tuple[datetime, int]], units: int, limit: int, window: timedelta
) -> datetime | None:
    """When ``units`` more fit under ``limit`` per ``window``, given the units ``used`` in
    the current window (oldest first); None when they fit now."""
    excess = sum(u for _, u in used) + units - limit
    if excess <= 0:
        return None
    for at, taken in used:
        excess -= taken
        if excess <= 0:
            return at + window
    raise AssertionError("units over the limit are refused by validation")


def bucket_key(limit: RateLimitSpec, run: Run) -> str:
    """The limit's key for this run. Raises ValueError when its expression fails."""
    if limit.key is not None:
        return limit.key
    assert limit.key_expression is not None
    return key_of(
        "rate limit keyExpression",
        limit.key_expression,
        run.spec.input,
        run.spec.additional_metadata,
    )


class RateGate:
    """Whether a new attempt of a step fits its rate limits; taking its units if it does.

    Decisions ask it while they run (synchronously, so no two passes take the last unit),
    and the units stay taken if the Job is never made: a lost unit, never an extra one.
    """

    def __init__(self, log: RateLog, namespace: str) -> None:
        self.log = log
        self.namespace = namespace

    def take(
        self, run: Run, step: StepSpec, job: str, now: datetime, *, check: bool = True
    ) -> list[tuple[str, int]] | Hold | Refused:
        """The units taken (key, units), or why the attempt waits or can never start.
        Without ``check``, the units are recorded whatever the limit says: an attempt
        whose Job is made again took its units already."""
        try:
            keys = [bucket_key(limit, run) for limit in step.rate_limits]
        except ValueError as error:
            return Refused(str(error))
        waits: list[Hold] = []
        for key, limit in zip(keys, step.rate_limits, strict=True) if check else ():
            bucket = (self.namespace, key)
            until = free_at(
                self.log.used(bucket, limit.window, now), limit.units, limit.limit, limit.window
            )
            earlier = self.log.ahead(bucket, job, now) if until is None else 0
            if earlier:
                until = now + TURN
            if until is not None:
                turn = f"; {earlier} attempt(s) held earlier go first" if earlier else ""
                waits.append(
                    Hold(
                        until,
                        f"waiting for rate limit {key!r} ({limit.limit} unit(s) per "
                        f"{limit.duration}, {limit.units} per attempt) until "
                        f"{until.isoformat(timespec='seconds')}{turn}",
                    )
                )
        buckets = [(self.namespace, key) for key in keys]
        if waits:
            hold = max(waits, key=lambda wait: wait.until)
            for bucket in buckets:
                self.log.wait(bucket, job, hold.until, now)
            return hold
        takes = [(key, limit.units) for key, limit in zip(keys, step.rate_limits, strict=True)]
        self.log.record(self.namespace, job, now, takes)
        for bucket in buckets:
            self.log.done_waiting(bucket, job)
        return takes
