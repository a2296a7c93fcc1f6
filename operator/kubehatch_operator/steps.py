"""One step's next state, from its latest attempt's Job: pure, like every decision.

Final phases never change. An attempt recorded in status whose Job is missing is
re-launched under the same (deterministic) name; a failed attempt with retries left
waits for its backoff, then launches the next attempt.
"""

from __future__ import annotations

from datetime import datetime

from kubehatch.api import wire
from kubehatch.api.workflow import Backoff, StepSpec, WorkflowSpec
from kubehatch.api.workflowrun import StepPhase, StepStatus, WorkflowRunStatus
from kubehatch_operator.model import Attempt, AttemptState, Decision, StartAttempt

DEFAULT_BACKOFF = Backoff()


def observe_step(
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


def start_ready_steps(
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
