"""The worker's loop: claims its pool's tasks, runs them, keeps their leases, reports them.

One thread owns all the state; the watch, the API calls (on a small thread pool, so a
slow call delays nothing else) and the step processes post events to it. Every decision
is a function of :mod:`kubehatch._pool.claims`; this only carries them out, which is why
it can be tested with a fake API, fake children and a fake clock.
"""

from __future__ import annotations

import math
import queue
import signal
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from functools import partial
from typing import Any

from kubehatch._pool import claims
from kubehatch._pool.api import Conflict, NotFound, Refused, Tasks, Unavailable, write_while_ours
from kubehatch._pool.claims import Stop
from kubehatch._pool.events import (
    Done,
    Event,
    Exited,
    Fatal,
    Listed,
    Shutdown,
    Started,
    Watched,
    ZygoteReady,
)
from kubehatch._pool.state import Attempt, Settings, Steps

MAX_WAIT = 1.0
CLAIM_BACKOFF = 1.0
"""A task whose claim failed for a passing reason is tried again after this long."""
REPORT_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)
"""Waits between tries of a report that failed for a passing reason, the last repeated until
the lease runs out: dropped sooner, a step that succeeded would run again after an outage."""


class Loop:
    """The worker's state and what it does about each event (see the module's doc)."""

    def __init__(
        self,
        settings: Settings,
        tasks: Tasks,
        steps: Steps,
        calls: Executor,
        say: Callable[[str], None],
        ready: Callable[[bool], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
        delays: tuple[float, ...] = REPORT_DELAYS,
    ) -> None:
        self.settings = settings
        self.tasks = tasks
        self.steps = steps
        self.calls = calls
        self.say = say
        self.ready = ready
        self.clock = clock
        self.delays = delays or (0.0,)
        self.events: queue.Queue[Event] = queue.Queue()
        self.pending: dict[str, dict[str, Any]] = {}
        self.claiming: set[str] = set()
        self.backoff: dict[str, float] = {}
        self.attempts: dict[str, Attempt] = {}
        self.listed = False
        self.loaded = False
        self.shutdown_at: float | None = None
        self.exit_code: int | None = None

    # --- running ------------------------------------------------------------------------
    def post(self, event: Event) -> None:
        """Thread-safe: how every other thread talks to the loop."""
        self.events.put(event)

    def run(self) -> int:
        while self.exit_code is None:
            self.turn(self.wait_time())
        return self.exit_code

    def turn(self, wait: float = 0.0) -> None:
        """Handle what was posted (waiting up to ``wait`` for the first), then act."""
        try:
            event: Event | None = self.events.get(timeout=wait) if wait > 0 else None
            while True:
                if event is not None:
                    self.handle(event)
                event = self.events.get_nowait()
        except queue.Empty:
            pass
        self.tick()

    def wait_time(self) -> float:
        now = self.clock()
        times = [self.shutdown_at or math.inf, *self.backoff.values()]
        for a in self.attempts.values():
            if a.running:
                times += [a.next_renew, a.renewed + a.lease, a.kill_at or math.inf]
                times.append(a.deadline or math.inf)
            elif not (a.renewing or claims.lease_lapsed(a.renewed, a.lease, now)):
                times += [a.next_renew, math.inf if a.reporting else a.next_report]
        return max(0.0, min(MAX_WAIT, min(times) - now))

    # --- events -------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        if isinstance(event, Done):
            calls = {"claim": self._claimed, "renew": self._renewed, "report": self._reported}
            calls[event.call](event)
        elif isinstance(event, Watched):
            self._watched(event.kind, event.task)
        elif isinstance(event, Listed):
            self._listed(event.tasks)
        elif isinstance(event, Started):
            self._started(event)
        elif isinstance(event, Exited):
            self._exited(event)
        elif isinstance(event, ZygoteReady):
            self.loaded = True
            self.say(f"loaded the worker's code in {event.load_ms:.0f} ms")
            self._maybe_ready()
        elif isinstance(event, Shutdown):
            self._shutdown(event.now)
        elif isinstance(event, Fatal):
            self.say(event.message)
            for name, a in self.attempts.items():
                if a.running:
                    self.steps.signal(name, signal.SIGKILL)
            self.exit_code = 1

    def _maybe_ready(self) -> None:
        if self.listed and self.loaded and self.shutdown_at is None:
            self.ready(True)

    def _listed(self, tasks: list[dict[str, Any]]) -> None:
        found = {claims.name_of(t): t for t in tasks}
        pool = self.settings.pool
        self.pending = {n: t for n, t in found.items() if claims.is_claimable(t, pool)}
        for name, a in list(self.attempts.items()):
            if a.running and name not in found:  # deleted while the watch was down
                self._stop(a, Stop.DELETED)
            elif a.running and claims.is_taken(found[name], self.settings.identity):
                self._stop(a, Stop.LOST, "it was given up (lease lapsed)")
        if not self.listed:
            self.listed = True
            self.say(f"watching the tasks of pool {self.settings.pool!r}")
            self._maybe_ready()

    def _watched(self, kind: str, task: dict[str, Any]) -> None:
        name = claims.name_of(task)
        a = self.attempts.get(name)
        if kind == "DELETED" or claims.is_deleting(task):
            self.pending.pop(name, None)
            if a is not None and a.running:
                self._stop(a, Stop.DELETED)
            return
        if claims.is_claimable(task, self.settings.pool):
            self.pending[name] = task
        else:
            self.pending.pop(name, None)
        if a is not None and a.running and claims.is_taken(task, self.settings.identity):
            self._stop(a, Stop.LOST, "it was given up (lease lapsed)")

    # --- claiming -----------------------------------------------------------------------
    def _free_slots(self) -> int:
        running = sum(1 for a in self.attempts.values() if a.running)
        return self.settings.slots - running - len(self.claiming)

    def _claim_more(self, now: float) -> None:
        if not (self.listed and self.loaded) or self.shutdown_at is not None:
            return
        for name, until in list(self.backoff.items()):
            if until <= now:
                del self.backoff[name]
        while self._free_slots() > 0:
            skip = self.claiming | self.backoff.keys() | self.attempts.keys()
            task = claims.next_claim(self.pending.values(), self.settings.pool, skip)
            if task is None:
                return
            name = claims.name_of(task)
            self.claiming.add(name)
            body = claims.claim_patch(claims.version_of(task), self.settings.identity)
            self._call(name, "claim", partial(self.tasks.patch_status, name, body))

    def _claimed(self, done: Done) -> None:
        name = done.name
        self.claiming.discard(name)
        task = self.pending.pop(name, None)
        if done.error is not None:
            if isinstance(done.error, Conflict | NotFound):
                return  # another worker was first, or it is gone: take the next
            if isinstance(done.error, Refused):
                self.say(f"claiming {name} was refused: {done.error}")
            else:
                self.say(f"claiming {name} failed: {done.error}; trying again")
            if task is not None:
                self.pending[name] = task
            self.backoff[name] = self.clock() + CLAIM_BACKOFF
            return
        claimed: dict[str, Any] = done.result
        now = self.clock()
        lease = claims.lease_of(claimed)
        a = Attempt(
            name=name,
            label=claims.describe(claimed),
            version=claims.version_of(claimed),
            lease=lease,
            timeout=claims.timeout_of(claimed),
            claimed=now,
            renewed=now,
            next_renew=claims.next_renewal(now, lease, failed=False),
        )
        self.attempts[name] = a
        self.say(f"claimed {name} ({a.label})")
        try:
            self.steps.run(name, claimed)
        except OSError as err:
            self.post(Fatal(f"cannot start the step of {name}: {err}"))

    # --- running steps ------------------------------------------------------------------
    def _started(self, event: Started) -> None:
        a = self.attempts.get(event.name)
        if a is None:
            return
        a.started = self.clock()
        a.deadline = claims.kill_deadline(a.started, a.timeout)

    def _stop(self, a: Attempt, why: Stop, detail: str = "") -> None:
        """Stop a's child for ``why``; a harder reason only makes it harder."""
        first, kills = a.stop is None, why in (Stop.LOST, Stop.TIMEOUT)
        if kills:
            self.steps.signal(a.name, signal.SIGKILL)
            a.kill_at = None
        elif first:
            self.steps.signal(a.name, signal.SIGTERM)
            grace = self.settings.stop_grace if why is Stop.DELETED else self.settings.shutdown_kill
            a.kill_at = self.clock() + grace
        if a.stop is None or (a.stop.reports and not why.reports):
            a.stop = why  # once it must not be reported, it never is
        elif not kills:
            return  # already stopping: nothing new to do or say
        self.say(claims.stop_line(a.name, why, detail, self.settings.stop_grace, a.timeout))

    def _exited(self, event: Exited) -> None:
        a = self.attempts.get(event.name)
        if a is None or not a.running:
            return
        now = self.clock()
        a.ended, a.ended_at = now, datetime.now(UTC)
        output, message = self.steps.result(a.name)
        took = (now - (a.started or a.claimed)) * 1000
        start = ((a.started or a.claimed) - a.claimed) * 1000
        if a.stop is not None and not a.stop.reports:
            self.say(f"{a.name} ended after {took:.0f} ms; not reported ({a.stop.value})")
            self._forget(a.name)
            return
        a.outcome = claims.outcome(
            event.code,
            output=output,
            message=message,
            stop=a.stop,
            timeout_seconds=a.timeout,
            worker=self.settings.identity,
        )
        self.say(
            f"finished {a.name} ({a.label}) in {took:.0f} ms, started {start:.1f} ms after "
            f"its claim: {a.outcome.reason.value}"
        )
        a.next_report = now  # sent by tick, after a renewal in flight (with its version)

    def _forget(self, name: str) -> None:
        self.attempts.pop(name, None)
        self.steps.forget(name)

    # --- leases and reports -------------------------------------------------------------
    def _renew(self, a: Attempt) -> None:
        a.renewing, a.renew_sent = True, self.clock()
        write = partial(write_while_ours, self.tasks, a.name, a.version, claims.renewal_patch)
        self._call(a.name, "renew", partial(write, self._owns, delays=()))

    def _owns(self, task: dict[str, Any]) -> bool:
        return claims.is_ours(task, self.settings.identity)

    def _renewed(self, done: Done) -> None:
        a = self.attempts.get(done.name)
        if a is None:
            return
        a.renewing = False
        now = self.clock()
        if done.error is None and done.result is not None:  # the lease runs from its sending
            a.version, a.renewed = claims.version_of(done.result), a.renew_sent
            a.next_renew = claims.next_renewal(now, a.lease, failed=False)
        else:
            a.next_renew = claims.next_renewal(now, a.lease, failed=True)
            why = "it is no longer this worker's" if done.error is None else str(done.error)
            if not (done.error is None or isinstance(done.error, NotFound | Refused)):
                self.say(f"renewing the claim on {a.name} failed: {why}")
            elif a.running:
                self._stop(a, Stop.DELETED if isinstance(done.error, NotFound) else Stop.LOST, why)
            elif not a.reporting:  # else the report in flight finds out too, and says so
                self._drop(a, why)

    def _keep_result(self, a: Attempt, now: float) -> None:
        """A finished step's result: renew its claim and try its report until it lands;
        drop it only once the lease ran out (the operator then runs the step again)."""
        if claims.lease_lapsed(a.renewed, a.lease, now):
            if not (a.renewing or a.reporting):  # else wait for their answers
                why = f"not reported within its lease of {a.lease}s, so it runs again"
                self._drop(a, f"{why} ({a.report_error or 'the renewals failed'})")
        elif not a.renewing and now >= a.next_renew:
            self._renew(a)  # a report in flight may be slow: the claim must not lapse
        elif not (a.renewing or a.reporting) and now >= a.next_report:
            self._report(a)

    def _report(self, a: Attempt) -> None:
        """One try (on a 409, read and written again while ours): retried by tick, which
        renews the claim between tries."""
        assert a.outcome is not None
        a.reporting = True
        body_of = partial(a.outcome.patch, at=a.ended_at)
        write = partial(write_while_ours, self.tasks, a.name, a.version, body_of, self._owns)
        self._call(a.name, "report", partial(write, delays=()))

    def _reported(self, done: Done) -> None:
        a = self.attempts.get(done.name)
        if a is None:
            return
        a.reporting = False
        if isinstance(done.error, Unavailable):
            delay = self.delays[min(a.report_tries, len(self.delays) - 1)]
            a.report_tries, a.report_error = a.report_tries + 1, str(done.error)
            a.next_report = self.clock() + delay
            self.say(f"reporting {a.name} failed: {done.error}; trying again in {delay:g}s")
        elif isinstance(done.error, NotFound):
            self._drop(a, "it is gone (deleted: its run was cancelled)")
        elif done.error is not None:
            self._drop(a, f"its report failed: {done.error}")
        elif done.result is None:
            self._drop(a, "it is no longer this worker's (it runs again elsewhere)")
        else:
            self._forget(a.name)

    def _drop(self, a: Attempt, why: str) -> None:
        self.say(f"dropped the result of {a.name}: {why}")
        self._forget(a.name)

    def _call(self, name: str, call: str, fn: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                self.post(Done(name, call, result=fn()))
            except Exception as err:
                self.post(Done(name, call, error=err))

        self.calls.submit(run)

    # --- time ---------------------------------------------------------------------------
    def tick(self) -> None:
        if self.exit_code is not None:
            return
        now = self.clock()
        for a in list(self.attempts.values()):
            if not a.running:
                self._keep_result(a, now)
                continue
            if a.kill_at is not None and now >= a.kill_at:
                self.steps.signal(a.name, signal.SIGKILL)
                a.kill_at = None
            if a.stop is None and a.deadline is not None and now >= a.deadline:
                self._stop(a, Stop.TIMEOUT)
            keeps_claim = a.stop is None or a.stop.reports
            if keeps_claim and claims.lease_lapsed(a.renewed, a.lease, now):
                self._stop(a, Stop.LOST, f"no renewal succeeded for {a.lease}s")
            elif keeps_claim and not a.renewing and now >= a.next_renew:
                self._renew(a)
        if self.shutdown_at is not None and now >= self.shutdown_at:
            for a in list(self.attempts.values()):
                if a.running and a.stop is None:
                    self._stop(a, Stop.SHUTDOWN)
        self._claim_more(now)
        if self.shutdown_at is not None and not self.attempts and not self.claiming:
            self.say("stopped")
            self.exit_code = 0

    def _shutdown(self, now: bool) -> None:
        if self.shutdown_at is None:
            self.ready(False)
            running = sum(1 for a in self.attempts.values() if a.running)
            grace = 0.0 if now else self.settings.shutdown_grace
            self.say(
                f"shutting down: no more claims; {running} running step(s) may finish "
                f"within {grace:g}s"
            )
            self.shutdown_at = self.clock() + grace
        elif now:
            self.shutdown_at = self.clock()
