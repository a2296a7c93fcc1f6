"""Run workflows in-process, without a cluster: for unit tests and trying examples.

The runner (:mod:`kubehatch._localrun`) follows the operator's rules: DAG order, parent
rules and ``skip_if`` / ``run_if`` conditions (the operator's own code), the outputs of
the parents that succeeded as stored JSON, retries with their backoff, step timeouts,
middleware, failures that skip only the steps below them, steps that cancel themselves
(``ctx.cancel()``), forEach steps (one item after the other), child runs (``ctx.spawn``,
run here from the same worker), the hooks (on-failure or on-success, then on-exit), the
input checked against the input model's schema. Steps that wait take what the test gives:
``Sleep`` and ``WaitUntil`` advance the clock, ``WaitForEvent`` takes ``events=[(key,
data)]``, ``Approval`` takes ``approvals={"step": True}``. Each step ends with the phase and the
message a cluster shows (:attr:`LocalRun.messages`). Concurrency and rate limits are not
applied (:func:`concurrency_key` computes the key)::

    run = run_workflow(worker, "two-step-workflow", {"username": "ada"})
    assert run.outputs["step-two"] == {"message": "..."}

Time is a :class:`FakeClock` by default: a retry's backoff advances it instead of
waiting, so a test of three retries with a one-minute backoff takes milliseconds, and
:func:`run_scheduled` runs the cron and ``At`` triggers that fall in a span of fake time::

    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    runs = run_scheduled(worker, clock, until=clock.now() + timedelta(hours=1))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kubehatch._localattempts import Clock, SystemClock
from kubehatch._localresult import LocalRun, StepEvent
from kubehatch._localrun import run_local
from kubehatch._localwaits import Answer
from kubehatch.api.cel import concurrency_key as evaluate_key
from kubehatch.context import Context
from kubehatch.durations import parse_duration
from kubehatch.worker import Worker

__all__ = [
    "Clock",
    "FakeClock",
    "LocalRun",
    "StepEvent",
    "SystemClock",
    "concurrency_key",
    "run_local",
    "run_scheduled",
    "run_workflow",
    "trigger_times",
]

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """Time that moves only when told: ``sleep`` and ``advance`` return at once."""

    def __init__(self, start: datetime = EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start, e.g. tzinfo=UTC")
        self._now = start
        self.sleeps: list[float] = []
        """Every ``sleep`` asked for, in seconds (e.g. the backoff before each retry)."""

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += timedelta(seconds=max(seconds, 0))

    def advance(self, by: timedelta | str) -> datetime:
        """Move forward ``by`` (a timedelta or "90s", "5m"...); returns the new time."""
        self._now += parse_duration(by) if isinstance(by, str) else by
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (not backwards)."""
        if moment < self._now:
            raise ValueError(f"the clock cannot go back from {self._now} to {moment}")
        self._now = moment


def run_workflow(
    worker: Worker,
    workflow: str,
    workflow_input: Any = None,
    *,
    run_name: str = "local",
    clock: Clock | None = None,
    on_event: Callable[[StepEvent], None] | None = None,
    additional_metadata: dict[str, str] | None = None,
    events: Iterable[Any] | None = None,
    approvals: Mapping[str, Answer] | None = None,
) -> LocalRun:
    """Run ``workflow`` to its end and return its outputs; raise if it did not succeed.

    The error raised is that of the first step (in DAG order) that failed for good, with
    a note naming the step, once the other branches ran; an input that does not fit the
    input model raises :class:`~kubehatch.api.inputschema.InvalidInputError`. Waits
    happen on ``clock``, a new :class:`FakeClock` unless given. :func:`run_local` returns
    a failed run instead of raising. ``additional_metadata`` is the run's, as conditions
    (``skip_if``, ``run_if``) read it. ``events`` (``(key, data)`` or ``(key, data,
    metadata)``) are what ``WaitForEvent`` steps may take, ``approvals`` the answers to
    ``Approval`` steps by step name (``True``, ``False`` or ``(bool, comment)``). A run
    that a step cancelled raises :class:`~kubehatch.errors.StepCancelledError`.
    """
    from kubehatch.api.inputschema import InvalidInputError
    from kubehatch.errors import StepCancelledError

    run = run_local(
        worker,
        workflow,
        workflow_input,
        clock=clock if clock is not None else FakeClock(),
        run_name=run_name,
        on_event=on_event,
        additional_metadata=additional_metadata,
        events=events,
        approvals=approvals,
    )
    if run.succeeded:
        return run
    failed = next((error for error in run.errors.values()), None)
    if failed is not None:
        raise failed
    if run.message.startswith("InvalidInput: "):
        raise InvalidInputError(workflow, run.message.partition(": ")[2].partition(": ")[2])
    if run.phase == "Cancelled":
        raise StepCancelledError(f"run of {workflow!r} was cancelled: {run.message}")
    raise AssertionError(f"run of {workflow!r} ended {run.phase}: {run.message}")


def trigger_times(
    worker: Worker, workflow: str, since: datetime, until: datetime
) -> list[datetime]:
    """When the workflow's crons and ``At`` times fire after ``since``, up to ``until``."""
    from croniter import croniter

    spec = worker.get_workflow(workflow).spec
    assert spec is not None, f"workflow {workflow!r} has problems: run worker.check()"
    times = [moment for moment in spec.triggers.at if since < moment <= until]
    for schedule in spec.triggers.crons:
        cron = croniter(schedule, since.astimezone(UTC))
        while (moment := cron.get_next(datetime).astimezone(UTC)) <= until:
            times.append(moment)
    return sorted(set(times))


def run_scheduled(
    worker: Worker,
    clock: FakeClock,
    until: datetime,
    workflow_input: Any = None,
    *,
    workflows: list[str] | None = None,
) -> list[tuple[datetime, LocalRun]]:
    """Move ``clock`` to ``until``, running every cron and ``At`` trigger due on the way.

    Each run starts with the clock at its trigger time, in time order (then by workflow),
    and gets ``workflow_input``; suspended workflows are not triggered, as on a cluster.
    Returns the runs with their times; a run may fail (see :attr:`LocalRun.phase`).
    """
    worker.check()
    names = workflows or [w.name for w in worker.workflows]
    start = clock.now()
    due: list[tuple[datetime, str]] = []
    for name in names:
        spec = worker.get_workflow(name).spec
        if spec is not None and not spec.suspend:
            due.extend((moment, name) for moment in trigger_times(worker, name, start, until))
    runs = []
    for moment, name in sorted(due):
        clock.set(max(moment, clock.now()))
        run_name = f"{name}-{int(moment.timestamp())}"
        runs.append(
            (moment, run_local(worker, name, workflow_input, clock=clock, run_name=run_name))
        )
    clock.set(max(until, clock.now()))
    return runs


def concurrency_key(worker: Worker, workflow: str, workflow_input: Any = None) -> str | None:
    """The concurrency key a run with this input gets (None without a limit)."""
    worker.check()
    spec = worker.get_workflow(workflow).spec
    assert spec is not None
    limit = spec.concurrency
    if limit is None:
        return None
    if limit.expression is not None:
        return evaluate_key(limit.expression, workflow_input if workflow_input is not None else {})
    assert limit.action is not None
    ctx = Context(workflow_input=workflow_input, workflow_name=workflow, step_name=limit.action)
    return str(worker.resolve_action(limit.action).invoke(ctx))
