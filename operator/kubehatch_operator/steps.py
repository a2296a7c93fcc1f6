"""One step's next state, from its latest attempt's Job: pure, like every decision.

Final phases never change. An attempt recorded in status whose Job is missing is
re-launched under the same (deterministic) name; a failed attempt with retries left
waits for its backoff and for its pod to be gone, then launches the next attempt. An
attempt whose pod does not start within the step's start timeout is stopped and counts
as failed.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from kubehatch.api import wire
from kubehatch.api.workflow import Backoff, StepSpec
from kubehatch.api.workflowrun import StepPhase, StepStatus
from kubehatch.durations import parse_duration
from kubehatch_operator import tasks
from kubehatch_operator.conditions import succeeded_parents
from kubehatch_operator.model import (
    Attempt,
    AttemptState,
    Decision,
    Item,
    Run,
    RunEvent,
    StartAttempt,
)
from kubehatch_operator.ratelimits import Hold, RateGate, Refused

DEFAULT_BACKOFF = Backoff()
DEFAULT_START_TIMEOUT = timedelta(minutes=10)
SUSPENDED = "waiting: the run is suspended (kubehatch resume RUN)"
TERMINATING_POLL = timedelta(seconds=2)
WAITING_POLL = timedelta(seconds=5)
"""How often a pod that has not started is looked at again, for its reason."""


def observe_step(
    run: Run,
    step: StepSpec,
    prior: StepStatus,
    attempts: list[Attempt],
    now: datetime,
    decision: Decision,
    rates: RateGate | None = None,
    item: Item | None = None,
) -> StepStatus:
    """The step's status from its latest attempt's Job; final phases never change.

    ``rates`` gives new attempts their rate limit units (None: no limits apply); ``item``
    is given for one item of a forEach step (its attempts are that item's)."""
    if prior.phase.finished:
        return prior
    # Attempts before the run was last retried are history.
    current = [a for a in attempts if a.attempt > prior.earlier_attempts]
    latest = max(current, key=lambda a: a.attempt, default=None)
    if latest is None or latest.attempt < prior.attempts:
        if prior.attempts == prior.earlier_attempts:
            return prior
        if prior.phase is StepPhase.RETRYING and prior.next_attempt_at is not None:
            # The failed attempt's Job is gone (stopped because its pod never started, or
            # collected): the retry it scheduled is still due.
            if now < prior.next_attempt_at:
                return prior
            return launch(
                run, step, prior.attempts + 1, prior, now, decision, None, rates, item=item
            )
        # Status records an attempt whose Job is gone or not yet seen: (re)create it.
        # The name is deterministic, so an existing Job makes this a no-op.
        return launch(
            run, step, prior.attempts, prior, now, decision, None, rates, fresh=False, item=item
        )
    base = prior.model_copy(update={"attempts": latest.attempt, "job_name": latest.job_name})
    if latest.state is AttemptState.SUCCEEDED:
        if latest.spawn is not None:  # it asked for child runs: it waits for them
            from kubehatch_operator.children import observe_children

            return observe_children(run, step, base, latest, now, decision)
        return base.model_copy(
            update={
                "phase": StepPhase.SUCCEEDED,
                "finished_at": latest.finished_at or now,
                "output_config_map": wire.output_configmap_name(latest.job_name),
                "message": None,
                "next_attempt_at": None,
            }
        )
    if latest.state is AttemptState.ACTIVE and latest.lease_expires_at is not None:
        if now < latest.lease_expires_at:  # claimed by a worker: look again when it lapses
            decision.wake_at = min(t for t in (decision.wake_at, latest.lease_expires_at) if t)
            return _running(latest, base, prior, now, decision, None)
        decision.lost_tasks.append(latest.job_name)
        latest = tasks.lost(latest, now)
    if latest.state is AttemptState.ACTIVE:
        deadline = _start_deadline(step, latest, prior, now)
        if deadline is None or now < deadline:
            return _running(latest, base, prior, now, decision, deadline)
        # Never started: stop its Job, and count the attempt as failed.
        decision.stop_jobs.append(latest.job_name)
        limit = step.start_timeout or "10m"
        reason = f": {latest.waiting}" if latest.waiting else ""
        latest = dataclasses.replace(
            latest,
            state=AttemptState.FAILED,
            finished_at=deadline,  # not now: a pass that sees it again reckons the same
            message=f"its pod did not start within {limit}{reason}",
        )
    lost = sum(a.lost for a in current if a.job_name != latest.job_name) + latest.lost
    return _failed(run, step, latest, base, now, decision, rates, item, lost)


def _start_deadline(
    step: StepSpec, attempt: Attempt, prior: StepStatus, now: datetime
) -> datetime | None:
    """When an attempt whose container has not started is given up; None once it started,
    or while its Job is suspended (a queue such as Kueue decides when its pod is made)."""
    if attempt.started or attempt.suspended:
        return None
    limit = parse_duration(step.start_timeout) if step.start_timeout else DEFAULT_START_TIMEOUT
    return (attempt.started_at or prior.started_at or now) + limit


def _running(
    attempt: Attempt,
    base: StepStatus,
    prior: StepStatus,
    now: datetime,
    decision: Decision,
    start_deadline: datetime | None,
) -> StepStatus:
    """An attempt in flight; while its pod waits to start, the step's message says why."""
    if start_deadline is not None:
        # Look again soon: the pod's waiting reason is read then (not watched: most pods
        # start within a second, and watching every step pod would cost every step).
        soon = min(start_deadline, now + WAITING_POLL)
        decision.wake_at = min(t for t in (decision.wake_at, soon) if t is not None)
    if attempt.suspended:
        message: str | None = (
            f"attempt {attempt.attempt} waiting for its Job to be admitted (suspended, e.g. "
            "by Kueue)"
        )
    elif attempt.waiting and not attempt.started:
        message = f"attempt {attempt.attempt} waiting to start: {attempt.waiting}"
    else:
        message = None
    return base.model_copy(
        update={
            "phase": StepPhase.RUNNING,
            "next_attempt_at": None,
            "started_at": prior.started_at or attempt.started_at or now,
            "message": message,
        }
    )


def _failed(
    run: Run,
    step: StepSpec,
    latest: Attempt,
    base: StepStatus,
    now: datetime,
    decision: Decision,
    rates: RateGate | None,
    item: Item | None,
    lost: int = 0,
) -> StepStatus:
    """A failed attempt: wait for its pod to stop, then retry after the backoff, or fail.

    An attempt lost with its worker (``lost`` of them so far) runs again at once, and is
    not held against the step's retries, up to `tasks.MAX_LOST`."""
    if latest.cancelled:
        return base.model_copy(
            update={
                "phase": StepPhase.CANCELLED,
                "finished_at": latest.finished_at or now,
                "message": latest.message or "cancelled by the step itself",
                "next_attempt_at": None,
            }
        )
    why = _failure_message(step, latest)
    if latest.lost and lost <= tasks.MAX_LOST:
        decision.events.append(RunEvent("Warning", "WorkerLost", f"step {step.name}: {why}"))
        return launch(run, step, latest.attempt + 1, base, now, decision, None, rates, item=item)
    # Since the run was last retried; lost attempts past MAX_LOST count as failures.
    tries = latest.attempt - base.earlier_attempts - min(lost, tasks.MAX_LOST)
    if tries <= step.retries and not latest.permanent:
        due = (latest.finished_at or now) + (step.backoff or DEFAULT_BACKOFF).delay(tries)
        if now >= due and not latest.terminating:
            return launch(
                run, step, latest.attempt + 1, base, now, decision, None, rates, item=item
            )
        # A retry never runs beside the attempt before it: it also waits for that pod to go.
        waits = "; waiting for its pod to stop" if latest.terminating else ""
        if latest.terminating:  # the Job's Failed condition wakes it; look again meanwhile
            due = max(due, now + TERMINATING_POLL)
        return base.model_copy(
            update={
                "phase": StepPhase.RETRYING,
                "next_attempt_at": due,
                "message": f"attempt {latest.attempt} {why}; retrying at {due.isoformat()}{waits}",
            }
        )
    final = StepPhase.TIMED_OUT if latest.timed_out else StepPhase.FAILED
    after = f" after {tries} attempts" if tries > 1 else ""
    return base.model_copy(
        update={
            "phase": final,
            "finished_at": latest.finished_at or now,
            "message": f"{why}{after}",
            "next_attempt_at": None,
        }
    )


def _failure_message(step: StepSpec, attempt: Attempt) -> str:
    if attempt.timed_out:
        return f"exceeded the step timeout of {step.timeout}"
    return f"failed: {attempt.message}" if attempt.message else "failed"


def launch(
    run: Run,
    step: StepSpec,
    attempt: int,
    prior: StepStatus,
    now: datetime,
    decision: Decision,
    parents: dict[str, str] | None,
    rates: RateGate | None = None,
    *,
    fresh: bool = True,
    item: Item | None = None,
) -> StepStatus:
    """Start an attempt, once its rate limits let it (a `fresh` one takes their units),
    unless the run is suspended (a lost Job of an attempt begun is made again even then)."""
    if decision.suspended and fresh:
        begun = prior.attempts > prior.earlier_attempts  # a retry waits as Retrying
        phase = StepPhase.RETRYING if begun else prior.phase
        # next_attempt_at stays: after the resumption the retry is still due.
        return prior.model_copy(update={"phase": phase, "message": SUSPENDED})
    if item is None:
        job = wire.job_name(run.name, run.uid, step.name, attempt)
    else:
        job = wire.item_job_name(run.name, run.uid, step.name, item.index, attempt)
    takes: tuple[tuple[str, int], ...] = ()
    if rates is not None and step.rate_limits:
        taken = rates.take(run, step, job, now, check=fresh)
        if isinstance(taken, Refused):
            return prior.model_copy(
                update={
                    "phase": StepPhase.FAILED,
                    "finished_at": now,
                    "next_attempt_at": None,
                    "message": f"cannot start: {taken.message}",
                }
            )
        if isinstance(taken, Hold):
            decision.wake_at = min(t for t in (decision.wake_at, taken.until) if t is not None)
            if attempt == prior.earlier_attempts + 1:  # not started: it stays Pending, saying why
                return prior.model_copy(update={"message": taken.message})
            return prior.model_copy(
                update={
                    "phase": StepPhase.RETRYING,
                    "next_attempt_at": taken.until,
                    "message": f"attempt {attempt} {taken.message}",
                }
            )
        takes = tuple(taken)
    if parents is None:  # a retry: the parents' outputs are already recorded
        steps = decision.status.steps
        parents = {p: steps[p].output_config_map or "" for p in succeeded_parents(step, steps)}
    decision.start.append(
        StartAttempt(
            step=step,
            attempt=attempt,
            job_name=job,
            parents=parents,
            rate_limits=takes,
            item=item.index if item is not None else None,
            item_value=item.value if item is not None else None,
        )
    )
    return prior.model_copy(
        update={
            "phase": StepPhase.RUNNING,
            "attempts": attempt,
            "job_name": job,
            "started_at": prior.started_at or now,
            "next_attempt_at": None,
            "message": None,
        }
    )
