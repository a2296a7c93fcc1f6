"""Rate limits: the units step attempts took per key, and whether one more attempt fits.

A limit allows `limit` units in any window of `duration` (a sliding log, so the limit
holds over every window, not only over aligned ones). Every attempt that takes units is
a Job carrying them in an annotation, so the log is rebuilt from the Jobs listed after a
restart, with no state of its own to write. A Job deleted with its run before its window
ends is forgotten by a restart: the limit may then let that many more units through once.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.cel import key_of
from kubehatch.api.queueing import MAX_RATE_WINDOW, RateLimitSpec
from kubehatch.api.workflow import StepSpec
from kubehatch_operator import clock
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
    until: datetime
    """When it asks again."""
    units: int


class Waiters:
    """Attempts held by rate limits, per bucket, so that a freed unit goes to the one held
    first, and each is woken about when its turn comes (not all of them at every unit)."""

    def __init__(self) -> None:
        self._by_bucket: dict[Bucket, dict[str, _Waiter]] = {}
        self._since: dict[str, tuple[datetime, int]] = {}
        """When each waiting attempt was first held (and in what order, for ties): one
        place across all its buckets."""
        self._order = itertools.count()
        self._buckets: dict[str, int] = {}

    def hold(self, bucket: Bucket, job: str, until: datetime, units: int, now: datetime) -> None:
        waiters = self._by_bucket.setdefault(bucket, {})
        if job not in waiters:
            self._buckets[job] = self._buckets.get(job, 0) + 1
        waiters[job] = _Waiter(until, units)
        if job not in self._since:
            self._since[job] = (now, next(self._order))

    def ahead(self, bucket: Bucket, job: str, now: datetime) -> tuple[int, int]:
        """Of the attempts held before ``job``: how many are due now (they go first), and
        how many units they all want."""
        waiters = self._by_bucket.get(bucket)
        if not waiters:
            return 0, 0
        for gone in [j for j, w in waiters.items() if now > w.until + GRACE]:
            self.done(bucket, gone)
        since = self._since.get(job, (now, sys.maxsize))
        due = units = 0
        for other, waiter in waiters.items():
            if other != job and self._since[other] < since:
                units += waiter.units
                due += waiter.until <= now + TURN
        return due, units

    def done(self, bucket: Bucket, job: str) -> None:
        waiters = self._by_bucket.get(bucket)
        if waiters is None or waiters.pop(job, None) is None:
            return
        if not waiters:
            del self._by_bucket[bucket]
        self._buckets[job] -= 1
        if not self._buckets[job]:
            del self._buckets[job], self._since[job]

    def __len__(self) -> int:
        """Attempts waiting."""
        return len(self._since)

    def sweep(self, now: datetime) -> None:
        """Forget the attempts that stopped asking (their runs were cancelled, or went)."""
        for bucket, waiters in list(self._by_bucket.items()):
            for job in [j for j, w in waiters.items() if now > w.until + GRACE]:
                self.done(bucket, job)


class RateLog:
    """Units taken per bucket, by the Job that took them; and the attempts waiting."""

    def __init__(self) -> None:
        self._taken: dict[Bucket, dict[str, tuple[datetime, int]]] = {}
        self.waiters = Waiters()

    def sweep(self, now: datetime) -> None:
        """Drop what no window can count any more, and waiters that stopped asking: the
        log stays bounded by the units of the last day, whatever keys come and go."""
        for bucket in list(self._taken):
            self.used(bucket, HORIZON, now)
        self.waiters.sweep(now)

    def record(self, namespace: str, job: str, at: datetime, takes: list[tuple[str, int]]) -> None:
        for key, units in takes:
            self._taken.setdefault((namespace, key), {})[job] = (at, units)

    def observe_job(self, body: dict[str, Any]) -> None:
        """Rebuild from a listed or watched Job: the units it took, at its creation."""
        meta = body.get("metadata") or {}
        raw = (meta.get("annotations") or {}).get(wire.ANNOTATION_RATE_LIMITS)
        created = wire.parse_time(meta.get("creationTimestamp"))
        if raw is None or created is None or created <= clock.now() - HORIZON:
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
        waits: list[tuple[Hold, Bucket, int]] = []
        for key, limit in zip(keys, step.rate_limits, strict=True) if check else ():
            bucket = (self.namespace, key)
            used = self.log.used(bucket, limit.window, now)
            until = free_at(used, limit.units, limit.limit, limit.window)
            due, units_ahead = self.log.waiters.ahead(bucket, job, now)
            turn = ""
            if until is None and due:
                until, turn = now + TURN, f"; {due} attempt(s) held earlier go first"
            elif until is not None and units_ahead:
                # Behind others: about one window per limit's worth of their units.
                until += limit.window * (units_ahead // limit.limit)
            if until is not None:
                message = (
                    f"waiting for rate limit {key!r} ({limit.limit} unit(s) per "
                    f"{limit.duration}, {limit.units} per attempt) until "
                    f"{until.isoformat(timespec='seconds')}{turn}"
                )
                waits.append((Hold(until, message), bucket, limit.units))
        if waits:
            hold = max((wait[0] for wait in waits), key=lambda wait: wait.until)
            for key, limit in zip(keys, step.rate_limits, strict=True):
                self.log.waiters.hold((self.namespace, key), job, hold.until, limit.units, now)
            return hold
        takes = [(key, limit.units) for key, limit in zip(keys, step.rate_limits, strict=True)]
        self.log.record(self.namespace, job, now, takes)
        for key in keys:
            self.log.waiters.done((self.namespace, key), job)
        return takes
