"""What a WorkflowRun should do next: a pure function of the run, its Workflow and its Jobs.

`decide` reads no cluster and writes nothing. It is given what the cluster shows (the
run's spec and last status, the Workflow, and one observation per step attempt Job)
and returns the status the run should have and the actions that get it there. Because
Job names are deterministic and Jobs are the source of truth for attempts in flight,
calling it again after a crash, or twice in a row, asks for the same actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from kubehatch.api import wire
from kubehatch.api.common import Condition, ConditionStatus, set_condition
from kubehatch.api.graph import topological_order
from kubehatch.api.workflow import Backoff, StepSpec, WorkflowSpec
from kubehatch.api.workflowrun import (
    StepPhase,
    StepStatus,
    WorkflowRunPhase,
    WorkflowRunSpec,
    WorkflowRunStatus,
)
from kubehatch.durations import format_duration, parse_duration

SUCCEEDED_CONDITION = "Succeeded"
DEFAULT_BACKOFF = Backoff()


class AttemptState(StrEnum):
    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class Attempt:
    """What the cluster shows about the Job of one step attempt."""

    step: str
    attempt: int
    job_name: str
    state: AttemptState
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timed_out: bool = False
    message: str | None = None
    permanent: bool = False
    """The step said a retry cannot help (a PermanentError, exit code 3)."""


@dataclass(frozen=True)
class Run:
    """The parts of a WorkflowRun that decisions depend on."""

    name: str
    generation: int
    spec: WorkflowRunSpec
    status: WorkflowRunStatus


@dataclass(frozen=True)
class StartAttempt:
    """Create the Job for one attempt of a step; parents maps parent -> output ConfigMap."""

    step: StepSpec
    attempt: int
    job_name: str
    parents: dict[str, str]


@dataclass(frozen=True)
class RunEvent:
    """A Kubernetes Event to post on the run."""

    type: str  # Normal or Warning
    reason: str
    message: str


class Verdict(StrEnum):
    START = "Start"
    QUEUE = "Queue"
    CANCEL = "Cancel"
    FAIL = "Fail"


@dataclass(frozen=True)
class Gate:
    """The concurrency limit's verdict on a run (see `admission`); None when there is no limit."""

    verdict: Verdict
    key: str | None = None
    message: str = ""


@dataclass
class Decision:
    status: WorkflowRunStatus
    start: list[StartAttempt] = field(default_factory=list)
    stop_jobs: list[str] = field(default_factory=list)
    create_input: bool = False
    wake_at: datetime | None = None
    events: list[RunEvent] = field(default_factory=list)


def decide(
    run: Run,
    workflow: WorkflowSpec | str | None,
    attempts: Sequence[Attempt],
    now: datetime,
    gate: Gate | None = None,
) -> Decision:
    """The next status of `run` and the actions to take, given what the cluster shows.

    `workflow` is the Workflow's spec, a message saying why it is invalid, or None when
    it does not exist; only a run that has not started yet looks at it. `gate` is the
    concurrency limit's verdict, for workflows that have one.
    """
    old = run.status
    status = old.model_copy(deep=True)
    status.observed_generation = run.generation
    decision = Decision(status=status)

    if old.phase is not None and old.phase.finished:
        # Finished runs only make sure nothing of theirs still runs.
        decision.stop_jobs = [a.job_name for a in attempts if a.state is AttemptState.ACTIVE]
        return decision

    if status.workflow_spec is None and run.spec.cancel:
        # Never started (queued, scheduled, waiting for its Workflow or its key): just end it.
        _cancel(status, decision, attempts, now, " before it started")
        return _finish_decision(old, decision)
    if status.workflow_spec is None and not _start(run, workflow, now, decision, gate):
        return _finish_decision(old, decision)

    spec = status.workflow_spec
    assert spec is not None
    by_step: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_step.setdefault(attempt.step, []).append(attempt)
    order = topological_order([(s.name, s.parents) for s in spec.steps])
    steps = {s.name: s for s in spec.steps}
    for name in order:
        prior = status.steps.get(name, StepStatus())
        status.steps[name] = _observe_step(
            run.name, steps[name], prior, by_step.get(name, []), now, decision
        )

    if gate is not None and gate.verdict in (Verdict.CANCEL, Verdict.FAIL):
        _end_by_gate(status, decision, attempts, gate, now)
    elif run.spec.cancel:
        _cancel(status, decision, attempts, now)
    elif (
        spec.timeout
        and status.started_at
        and now >= status.started_at + parse_duration(spec.timeout)
    ):
        _end_run(
            status,
            decision,
            attempts,
            WorkflowRunPhase.TIMED_OUT,
            "TimedOut",
            f"the run exceeded its timeout of {spec.timeout}",
            now,
        )
    elif failed := [
        n for n in order if status.steps[n].phase in (StepPhase.FAILED, StepPhase.TIMED_OUT)
    ]:
        first = status.steps[failed[0]]
        _end_run(
            status,
            decision,
            attempts,
            WorkflowRunPhase.FAILED,
            "StepFailed",
            f"step {failed[0]} {first.phase.lower()}: {first.message or 'no message'}",
            now,
        )
    else:
        _start_ready_steps(run.name, spec, order, status, decision, now)
        if all(status.steps[n].phase is StepPhase.SUCCEEDED for n in order):
            status.phase = WorkflowRunPhase.SUCCEEDED
            _set_finished(status, now)
            _set_succeeded(status, ConditionStatus.TRUE, "Succeeded", "all steps succeeded", run)
        else:
            status.phase = WorkflowRunPhase.RUNNING
            _set_succeeded(status, ConditionStatus.UNKNOWN, "Running", "", run)
            decision.wake_at = _next_wake(status, spec)

    succeeded = sum(status.steps[n].phase is StepPhase.SUCCEEDED for n in order)
    status.progress = f"{succeeded}/{len(order)}"
    return _finish_decision(old, decision)


def awaiting_key(run: Run, message: str) -> WorkflowRunStatus:
    """A run waiting for its concurrency key action (a pod) to say which group it is in."""
    status = run.status.model_copy(deep=True)
    status.observed_generation = run.generation
    status.phase = WorkflowRunPhase.PENDING
    _set_succeeded(status, ConditionStatus.UNKNOWN, "ComputingConcurrencyKey", message, run)
    return status


def _start(
    run: Run,
    workflow: WorkflowSpec | str | None,
    now: datetime,
    decision: Decision,
    gate: Gate | None,
) -> bool:
    """Take the Workflow snapshot and start the run, unless it must wait; True if started."""
    status = decision.status
    status.phase = WorkflowRunPhase.PENDING
    if run.spec.scheduled_at is not None and now < run.spec.scheduled_at:
        decision.wake_at = run.spec.scheduled_at
        _set_succeeded(
            status,
            ConditionStatus.UNKNOWN,
            "Scheduled",
            f"waiting for spec.scheduledAt ({run.spec.scheduled_at.isoformat()})",
            run,
        )
        return False
    if workflow is None:
        name = run.spec.workflow_ref.name
        _set_succeeded(
            status,
            ConditionStatus.UNKNOWN,
            "WorkflowNotFound",
            f"Workflow {name!r} does not exist in this namespace; create it "
            "(kubehatch render ... | kubectl apply -f -) and the run starts",
            run,
        )
        return False
    if isinstance(workflow, str):
        name = run.spec.workflow_ref.name
        _set_succeeded(
            status,
            ConditionStatus.UNKNOWN,
            "WorkflowInvalid",
            f"Workflow {name!r} is invalid: {workflow}; fix it and the run starts",
            run,
        )
        return False
    if gate is not None:
        status.concurrency_key = gate.key
        if gate.verdict is Verdict.QUEUE:
            status.phase = WorkflowRunPhase.QUEUED
            _set_succeeded(status, ConditionStatus.UNKNOWN, "Queued", gate.message, run)
            return False
        if gate.verdict in (Verdict.CANCEL, Verdict.FAIL):
            _end_by_gate(status, decision, [], gate, now)
            return False
    status.workflow_spec = workflow.model_copy(deep=True)
    status.started_at = now
    status.phase = WorkflowRunPhase.RUNNING
    status.input_config_map = wire.input_configmap_name(run.name)
    status.steps = {s.name: StepStatus() for s in workflow.steps}
    decision.create_input = True
    return True


def _observe_step(
    run: str,
    step: StepSpec,
    prior: StepStatus,
    attempts: list[Attempt],
    now: datetime,
    decision: Decision,
) -> StepStatus:
    """The step's status from its latest attempt's Job; final phases never change."""
    if prior.phase.finished:
        return prior
    latest = max(attempts, key=lambda a: a.attempt, default=None)
    if latest is None or latest.attempt < prior.attempts:
        if prior.attempts == 0:
            return prior
        # Status records an attempt whose Job is gone or not yet seen: (re)create it.
        # The name is deterministic, so an existing Job makes this a no-op.
        return _launch(run, step, prior.attempts, prior, now, decision, parents=None)
    base = prior.model_copy(update={"attempts": latest.attempt, "job_name": latest.job_name})
    if latest.state is AttemptState.ACTIVE:
        return base.model_copy(
            update={
                "phase": StepPhase.RUNNING,
                "next_attempt_at": None,
                "started_at": prior.started_at or latest.started_at or now,
            }
        )
    if latest.state is AttemptState.SUCCEEDED:
        return base.model_copy(
            update={
                "phase": StepPhase.SUCCEEDED,
                "finished_at": latest.finished_at or now,
                "output_config_map": wire.output_configmap_name(run, step.name, latest.attempt),
                "message": None,
                "next_attempt_at": None,
            }
        )
    why = _failure_message(step, latest)
    if latest.attempt <= step.retries and not latest.permanent:
        due = (latest.finished_at or now) + (step.backoff or DEFAULT_BACKOFF).delay(latest.attempt)
        if now >= due:
            return _launch(run, step, latest.attempt + 1, base, now, decision, parents=None)
        return base.model_copy(
            update={
                "phase": StepPhase.RETRYING,
                "next_attempt_at": due,
                "message": f"attempt {latest.attempt} {why}; retrying at {due.isoformat()}",
            }
        )
    final = StepPhase.TIMED_OUT if latest.timed_out else StepPhase.FAILED
    tries = f" after {latest.attempt} attempts" if latest.attempt > 1 else ""
    return base.model_copy(
        update={
            "phase": final,
            "finished_at": latest.finished_at or now,
            "message": f"{why}{tries}",
            "next_attempt_at": None,
        }
    )


def _failure_message(step: StepSpec, attempt: Attempt) -> str:
    if attempt.timed_out:
        return f"exceeded the step timeout of {step.timeout}"
    return f"failed: {attempt.message}" if attempt.message else "failed"


def _launch(
    run: str,
    step: StepSpec,
    attempt: int,
    prior: StepStatus,
    now: datetime,
    decision: Decision,
    parents: dict[str, str] | None,
) -> StepStatus:
    job = wire.job_name(run, step.name, attempt)
    if parents is None:  # a retry: the parents' outputs are already recorded
        steps = decision.status.steps
        parents = {p: steps[p].output_config_map or "" for p in step.parents}
    decision.start.append(StartAttempt(step=step, attempt=attempt, job_name=job, parents=parents))
    return prior.model_copy(
        update={
            "phase": StepPhase.RUNNING,
            "attempts": attempt,
            "job_name": job,
            "started_at": prior.started_at or now,
            "next_attempt_at": None,
        }
    )


def _start_ready_steps(
    run: str,
    spec: WorkflowSpec,
    order: list[str],
    status: WorkflowRunStatus,
    decision: Decision,
    now: datetime,
) -> None:
    for step in spec.steps:
        current = status.steps[step.name]
        if current.phase is not StepPhase.PENDING or current.attempts:
            continue
        parents = {p: status.steps[p] for p in step.parents}
        if all(p.phase is StepPhase.SUCCEEDED for p in parents.values()):
            outputs = {name: p.output_config_map or "" for name, p in parents.items()}
            status.steps[step.name] = _launch(run, step, 1, current, now, decision, outputs)


def _end_run(
    status: WorkflowRunStatus,
    decision: Decision,
    attempts: Sequence[Attempt],
    phase: WorkflowRunPhase,
    reason: str,
    message: str,
    now: datetime,
) -> None:
    """Finish the run: stop what runs, skip what never started."""
    decision.start.clear()
    decision.stop_jobs = [a.job_name for a in attempts if a.state is AttemptState.ACTIVE]
    for name, step in status.steps.items():
        if step.phase is StepPhase.RUNNING or step.phase is StepPhase.RETRYING:
            stopped = (
                StepPhase.TIMED_OUT if phase is WorkflowRunPhase.TIMED_OUT else StepPhase.CANCELLED
            )
            status.steps[name] = step.model_copy(
                update={
                    "phase": stopped,
                    "finished_at": now,
                    "next_attempt_at": None,
                    "message": message,
                }
            )
        elif step.phase is StepPhase.PENDING:
            status.steps[name] = step.model_copy(
                update={
                    "phase": StepPhase.SKIPPED,
                    "message": f"not started: {message}",
                }
            )
    status.phase = phase
    _set_finished(status, now)
    status.conditions = set_condition(
        status.conditions,
        Condition(
            type=SUCCEEDED_CONDITION,
            status=ConditionStatus.FALSE,
            reason=reason,
            message=message,
            observed_generation=status.observed_generation,
        ),
    )


def _cancel(
    status: WorkflowRunStatus,
    decision: Decision,
    attempts: Sequence[Attempt],
    now: datetime,
    when: str = "",
) -> None:
    """End a run whose spec.cancel is true."""
    message = f"the run was cancelled (spec.cancel is true){when}"
    _end_run(status, decision, attempts, WorkflowRunPhase.CANCELLED, "Cancelled", message, now)


def _end_by_gate(
    status: WorkflowRunStatus,
    decision: Decision,
    attempts: Sequence[Attempt],
    gate: Gate,
    now: datetime,
) -> None:
    """End a run the concurrency limit cancelled, or whose key could not be computed."""
    if gate.verdict is Verdict.CANCEL:
        phase, reason = WorkflowRunPhase.CANCELLED, "ConcurrencyLimit"
    else:
        phase, reason = WorkflowRunPhase.FAILED, "ConcurrencyKeyFailed"
    _end_run(status, decision, attempts, phase, reason, gate.message, now)


def _set_finished(status: WorkflowRunStatus, now: datetime) -> None:
    status.finished_at = now
    if status.started_at is not None:
        status.duration = format_duration(max(now - status.started_at, timedelta(0)))


def _set_succeeded(
    status: WorkflowRunStatus, value: ConditionStatus, reason: str, message: str, run: Run
) -> None:
    status.conditions = set_condition(
        status.conditions,
        Condition(
            type=SUCCEEDED_CONDITION,
            status=value,
            reason=reason,
            message=message,
            observed_generation=run.generation,
        ),
    )


def _next_wake(status: WorkflowRunStatus, spec: WorkflowSpec) -> datetime | None:
    """The earliest time something changes without a watch event: a retry or the deadline."""
    times = [s.next_attempt_at for s in status.steps.values() if s.next_attempt_at]
    if spec.timeout and status.started_at:
        times.append(status.started_at + parse_duration(spec.timeout))
    return min(times, default=None)


def _finish_decision(old: WorkflowRunStatus, decision: Decision) -> Decision:
    decision.events = transition_events(old, decision.status)
    return decision


def transition_events(old: WorkflowRunStatus, new: WorkflowRunStatus) -> list[RunEvent]:
    """One Event per step transition and per run transition, for `kubectl describe`."""
    events: list[RunEvent] = []
    for name, step in new.steps.items():
        before = old.steps.get(name)
        if before is not None and before.phase == step.phase and before.attempts == step.attempts:
            continue
        if step.phase is StepPhase.PENDING:
            continue
        warning = step.phase in (StepPhase.FAILED, StepPhase.TIMED_OUT, StepPhase.RETRYING)
        attempt = f" (attempt {step.attempts})" if step.attempts > 1 else ""
        detail = f": {step.message}" if step.message and warning else ""
        events.append(
            RunEvent(
                "Warning" if warning else "Normal",
                f"Step{step.phase.value}",
                f"step {name} {step.phase.value.lower()}{attempt}{detail}",
            )
        )
    if new.phase != old.phase and new.phase is not None:
        cond = next((c for c in new.conditions if c.type == SUCCEEDED_CONDITION), None)
        warning = new.phase in (WorkflowRunPhase.FAILED, WorkflowRunPhase.TIMED_OUT)
        took = ""
        if new.finished_at and new.started_at:
            took = f" after {format_duration(max(new.finished_at - new.started_at, timedelta(0)))}"
        message = f"run {new.phase.value.lower()}{took}" + (
            f": {cond.message}" if cond and cond.message else ""
        )
        events.append(
            RunEvent("Warning" if warning else "Normal", f"Run{new.phase.value}", message)
        )
    return events
