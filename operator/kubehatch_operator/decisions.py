"""What a WorkflowRun should do next: a pure function of the run, its Workflow and its Jobs.

`decide` reads no cluster and writes nothing. It is given what the cluster shows (the
run's spec and last status, the Workflow, and one observation per step attempt Job)
and returns the status the run should have and the actions that get it there. Because
Job names are deterministic and Jobs are the source of truth for attempts in flight,
calling it again after a crash, or twice in a row, asks for the same actions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.common import Condition, ConditionStatus, set_condition
from kubehatch.api.graph import topological_order
from kubehatch.api.inputschema import input_problems
from kubehatch.api.workflow import WorkflowSpec
from kubehatch.api.workflowrun import (
    StepPhase,
    StepStatus,
    WorkflowRunPhase,
    WorkflowRunStatus,
)
from kubehatch.durations import format_duration, parse_duration
from kubehatch_operator.fanout import item_list, observe_items
from kubehatch_operator.hooks import start_hooks, with_failures
from kubehatch_operator.model import (
    Attempt,
    AttemptState,
    Decision,
    Gate,
    Run,
    Verdict,
)
from kubehatch_operator.outcome import first_cancellation, first_failure
from kubehatch_operator.ratelimits import RateGate
from kubehatch_operator.starting import skip_blocked, start_ready_steps
from kubehatch_operator.steps import observe_step
from kubehatch_operator.transitions import SUCCEEDED_CONDITION, transition_events
from kubehatch_operator.waits import Waited, observe_wait


def decide(
    run: Run,
    workflow: WorkflowSpec | str | None,
    attempts: Sequence[Attempt],
    now: datetime,
    gate: Gate | None = None,
    rates: RateGate | None = None,
    outputs: Mapping[str, Any] | None = None,
    gathered: Mapping[str, list[Any]] | None = None,
    waited: Mapping[str, Waited] | None = None,
) -> Decision:
    """The next status of `run` and the actions to take, given what the cluster shows.

    `workflow` is the Workflow's spec, a message saying why it is invalid, or None when
    it does not exist; only a run that has not started yet looks at it. `gate` is the
    concurrency limit's verdict, for workflows that have one; `rates` gives new attempts
    their rate limit units; `outputs` holds the steps' outputs that conditions and forEach
    lists read (see `conditions.needs_outputs`), `gathered` the items' outputs of forEach
    steps whose items are all done, `waited` what waiting steps waited for (events,
    approvals).
    """
    old = run.status
    status = old.model_copy(deep=True)
    status.observed_generation = run.generation
    decision = Decision(status=status, suspended=run.spec.suspend)

    if old.phase is not None and old.phase.finished:
        # Finished runs only make sure nothing of theirs still runs.
        decision.stop_jobs = [a.job_name for a in attempts if a.state is AttemptState.ACTIVE]
        return decision

    if status.workflow_spec is None and run.spec.cancel:
        # Never started (queued, scheduled, waiting for its Workflow or its key): just end it.
        _cancel(status, decision, attempts, now, " before it started")
        return finish_decision(old, decision)
    if status.workflow_spec is None and not _start(run, workflow, now, decision, gate):
        return finish_decision(old, decision)

    spec = status.workflow_spec
    assert spec is not None
    by_step: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_step.setdefault(attempt.step, []).append(attempt)
    order = topological_order([(s.name, s.parents) for s in spec.steps])
    hooks = [step.name for _, step in spec.hooks]
    observed = [*order, *hooks]
    steps = {s.name: s for s in spec.all_steps}
    for name in observed:
        prior = status.steps.get(name, StepStatus())
        step, found = steps[name], by_step.get(name, [])
        if step.for_each and prior.items is not None and not prior.phase.finished:
            items = item_list(run, step, status.steps, outputs or {})
            done = (gathered or {}).get(name)
            status.steps[name] = observe_items(
                run, step, prior, found, items, done, now, decision, rates
            )
        elif step.wait is not None and prior.phase is StepPhase.RUNNING:
            seen = (waited or {}).get(name, Waited())
            status.steps[name] = observe_wait(run, step, prior, now, decision, seen, outputs or {})
        else:
            status.steps[name] = observe_step(run, step, prior, found, now, decision, rates)

    if gate is not None and gate.verdict in (Verdict.CANCEL, Verdict.FAIL):
        end_by_gate(status, decision, attempts, gate, now)
    elif run.spec.cancel:
        _cancel(status, decision, attempts, now)
    elif (
        spec.timeout
        and status.started_at
        and now >= status.started_at + parse_duration(spec.timeout)
    ):
        end_run(
            status,
            decision,
            attempts,
            WorkflowRunPhase.TIMED_OUT,
            "TimedOut",
            f"the run exceeded its timeout of {spec.timeout}",
            now,
        )
    elif spec.fail_fast and not hooks and (failure := first_failure(status, order)):
        # The first failure ends the run: running steps stop, pending ones are skipped.
        end_run(status, decision, attempts, WorkflowRunPhase.FAILED, "StepFailed", failure, now)
    else:
        if spec.fail_fast and (failure := first_failure(status, order)):
            # As above, but the on-failure step is still to run.
            stop_steps(status, decision, attempts, WorkflowRunPhase.FAILED, failure, now, hooks)
        else:
            # A failure stops only what depends on it; the other branches run to their end.
            skip_blocked(order, steps, status)
            start_ready_steps(run, spec, order, status, decision, now, rates, outputs)
        start_hooks(run, spec, order, status, decision, now, rates)
        if all(status.steps[n].phase.finished for n in observed):
            failure = first_failure(status, observed)
            cancelled = first_cancellation(status, observed)
            _set_finished(status, now)
            if failure:  # Failed outranks Cancelled
                status.phase = WorkflowRunPhase.FAILED
                set_succeeded(status, ConditionStatus.FALSE, "StepFailed", failure, run)
            elif cancelled:
                status.phase = WorkflowRunPhase.CANCELLED
                set_succeeded(status, ConditionStatus.FALSE, "StepCancelled", cancelled, run)
            else:
                status.phase = WorkflowRunPhase.SUCCEEDED
                set_succeeded(status, ConditionStatus.TRUE, "Succeeded", "all steps succeeded", run)
        else:
            status.phase = WorkflowRunPhase.RUNNING
            if run.spec.suspend:
                running = sum(s.phase is StepPhase.RUNNING for s in status.steps.values())
                why = f"no new step starts until it is resumed; {running} step(s) still running"
                set_succeeded(status, ConditionStatus.UNKNOWN, "Suspended", why, run)
            else:
                set_succeeded(status, ConditionStatus.UNKNOWN, "Running", "", run)
            wakes = (decision.wake_at, _next_wake(status, spec, run.spec.suspend))
            decision.wake_at = min((t for t in wakes if t is not None), default=None)

    succeeded = sum(status.steps[n].phase is StepPhase.SUCCEEDED for n in order)
    status.progress = f"{succeeded}/{len(order)}"
    if hooks:
        with_failures(spec, status, decision)
    return finish_decision(old, decision)


def refuse(
    status: WorkflowRunStatus,
    generation: int,
    reason: str,
    message: str,
    now: datetime,
    attempts: Sequence[Attempt] = (),
) -> Decision:
    """End a run that cannot run as it is: Failed, with the reason and what to fix.

    For a run whose own spec is invalid, whose Workflow names a ServiceAccount steps may
    not use, whose input cannot be stored, or that the API server refused to serve.
    """
    old = status
    status = status.model_copy(deep=True)
    status.observed_generation = generation
    decision = Decision(status=status)
    end_run(status, decision, attempts, WorkflowRunPhase.FAILED, reason, message, now)
    return finish_decision(old, decision)


def account_problem(spec: WorkflowSpec, allowed: frozenset[str]) -> str | None:
    """Why the Workflow's ServiceAccount may not run steps, or None when it may."""
    account = spec.service_account_name
    if account is None or account in allowed:
        return None
    return (
        f"spec.serviceAccountName: step pods may not run as ServiceAccount {account!r}; "
        f"use one of {', '.join(sorted(allowed))} (an administrator allows more with the "
        "chart value stepServiceAccount.allowed)"
    )


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
        set_succeeded(
            status,
            ConditionStatus.UNKNOWN,
            "Scheduled",
            f"waiting for spec.scheduledAt ({run.spec.scheduled_at.isoformat()})",
            run,
        )
        return False
    if workflow is None:
        name = run.spec.workflow_ref.name
        set_succeeded(
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
        set_succeeded(
            status,
            ConditionStatus.UNKNOWN,
            "WorkflowInvalid",
            f"Workflow {name!r} is invalid: {workflow}; fix it and the run starts",
            run,
        )
        return False
    if gate is not None:
        status.concurrency_key = gate.key
        status.concurrency_limit = gate.limit
        if gate.verdict is Verdict.QUEUE:
            status.phase = WorkflowRunPhase.QUEUED
            reason = gate.reason or "Queued"
            set_succeeded(status, ConditionStatus.UNKNOWN, reason, gate.message, run)
            decision.wake_at = gate.wake_at
            return False
        if gate.verdict in (Verdict.CANCEL, Verdict.FAIL):
            end_by_gate(status, decision, [], gate, now)
            return False
    # The input was checked against the schema at submit (CLI, Client), but a run made with
    # kubectl was not. The reconciler reads an elided (large) input back before a run starts.
    problems = input_problems(workflow.input_schema, run.spec.input)
    if problems is not None:
        message = f"the input does not fit Workflow {run.spec.workflow_ref.name!r}: {problems}"
        end_run(status, decision, [], WorkflowRunPhase.FAILED, "InvalidInput", message, now)
        return False
    status.workflow_spec = workflow.model_copy(deep=True)
    status.started_at = now
    status.phase = WorkflowRunPhase.RUNNING
    if wire.inline_input(run.spec.input) is None:  # else it travels in the pods' env
        status.input_config_map = wire.input_configmap_name(run.name, run.uid)
        decision.create_input = True
    # A retried run keeps what its steps did (see `retrying`); a new one starts afresh.
    status.steps = {s.name: status.steps.get(s.name, StepStatus()) for s in workflow.all_steps}
    return True


def end_run(
    status: WorkflowRunStatus,
    decision: Decision,
    attempts: Sequence[Attempt],
    phase: WorkflowRunPhase,
    reason: str,
    message: str,
    now: datetime,
) -> None:
    """Finish the run: stop what runs, skip what never started."""
    stop_steps(status, decision, attempts, phase, message, now)
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


def stop_steps(
    status: WorkflowRunStatus,
    decision: Decision,
    attempts: Sequence[Attempt],
    phase: WorkflowRunPhase,
    message: str,
    now: datetime,
    keep: Collection[str] = (),
) -> None:
    """Stop what runs and skip what never started, all but the steps in ``keep``."""
    decision.start = [s for s in decision.start if s.step.name in keep]
    decision.stop_jobs += [
        a.job_name for a in attempts if a.state is AttemptState.ACTIVE and a.step not in keep
    ]
    for name, step in status.steps.items():
        if name in keep:
            continue
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


def _cancel(
    status: WorkflowRunStatus,
    decision: Decision,
    attempts: Sequence[Attempt],
    now: datetime,
    when: str = "",
) -> None:
    """End a run whose spec.cancel is true."""
    message = f"the run was cancelled (spec.cancel is true){when}"
    end_run(status, decision, attempts, WorkflowRunPhase.CANCELLED, "Cancelled", message, now)


def end_by_gate(
    status: WorkflowRunStatus,
    decision: Decision,
    attempts: Sequence[Attempt],
    gate: Gate,
    now: datetime,
) -> None:
    """End a run the concurrency limit cancelled, or whose key could not be computed."""
    if gate.verdict is Verdict.CANCEL:
        phase, reason = WorkflowRunPhase.CANCELLED, gate.reason or "ConcurrencyLimit"
    else:
        phase, reason = WorkflowRunPhase.FAILED, gate.reason or "ConcurrencyKeyFailed"
    end_run(status, decision, attempts, phase, reason, gate.message, now)


def _set_finished(status: WorkflowRunStatus, now: datetime) -> None:
    status.finished_at = now
    if status.started_at is not None:
        status.duration = format_duration(max(now - status.started_at, timedelta(0)))


def set_succeeded(
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


def _next_wake(
    status: WorkflowRunStatus, spec: WorkflowSpec, suspended: bool = False
) -> datetime | None:
    """The earliest time something changes without a watch event: a retry or the deadline
    (a suspended run's retries wait for its resumption, a change of its spec)."""
    retries = [] if suspended else status.steps.values()
    times = [s.next_attempt_at for s in retries if s.next_attempt_at]
    if spec.timeout and status.started_at:
        times.append(status.started_at + parse_duration(spec.timeout))
    return min(times, default=None)


def finish_decision(old: WorkflowRunStatus, decision: Decision) -> Decision:
    decision.events = [*decision.events, *transition_events(old, decision.status)]
    return decision
