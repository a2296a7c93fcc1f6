"""The concurrency key pseudo-step: a run's key computed by an action, before admission.

The key decides admission, so it must be known before the run starts: the action runs
in a pod of its own, a step in all but name (its Job, input and output follow the same
conventions, and it has a timeout, a start timeout and retries of its own). Pure, like
every decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

from kubehatch.api import wire
from kubehatch.api.common import ConditionStatus
from kubehatch.api.workflow import StepSpec, WorkflowSpec
from kubehatch.api.workflowrun import WorkflowRunPhase
from kubehatch_operator.decisions import end_by_gate, finish_decision, set_succeeded
from kubehatch_operator.model import (
    Attempt,
    AttemptState,
    Decision,
    Gate,
    Run,
    StartAttempt,
    Verdict,
)
from kubehatch_operator.steps import DEFAULT_START_TIMEOUT

KEY_TIMEOUT = "2m"
"""How long the key action may run: it reads the input and returns a string."""
KEY_RETRIES = 2
KEY_BACKOFF = timedelta(seconds=5)


def key_attempt(attempts: Sequence[Attempt]) -> Attempt | None:
    """The latest attempt of the key pseudo-step."""
    keyed = [a for a in attempts if a.step == wire.KEY_STEP]
    return max(keyed, key=lambda a: a.attempt, default=None)


def decide_key(
    run: Run,
    spec: WorkflowSpec,
    attempts: Sequence[Attempt],
    key_output: str | None,
    now: datetime,
) -> Decision:
    """The next step of computing ``run``'s key; ``key_output`` is what the action returned
    once an attempt succeeded."""
    assert spec.concurrency is not None and spec.concurrency.action is not None
    action = spec.concurrency.action
    status = run.status.model_copy(deep=True)
    status.observed_generation = run.generation
    decision = Decision(status=status)
    latest = key_attempt(attempts)
    if latest is not None and latest.state is AttemptState.ACTIVE and not latest.started:
        began = latest.started_at or now
        if now >= began + DEFAULT_START_TIMEOUT:
            decision.stop_jobs.append(latest.job_name)
            why = f"its pod did not start within 10m: {latest.waiting or 'no reason given'}"
            latest = dataclasses.replace(
                latest, state=AttemptState.FAILED, finished_at=now, message=why
            )
        else:
            decision.wake_at = min(began + DEFAULT_START_TIMEOUT, now + timedelta(seconds=5))
    if latest is None:
        _launch(run, action, 1, decision)
    elif latest.state is AttemptState.SUCCEEDED and key_output is not None:
        status.concurrency_key = key_output
        decision.wake_at = now  # admission can place it now
    elif latest.state is AttemptState.FAILED:
        due = (latest.finished_at or now) + KEY_BACKOFF * latest.attempt
        if latest.attempt > KEY_RETRIES or latest.permanent:
            why = f"the concurrency key action {action!r} failed: {latest.message}"
            status.phase = WorkflowRunPhase.PENDING
            end_by_gate(status, decision, attempts, Gate(Verdict.FAIL, None, why), now)
        elif now >= due and not latest.terminating:
            _launch(run, action, latest.attempt + 1, decision)
        else:
            decision.wake_at = max(due, now + timedelta(seconds=2))
    return finish_decision(run.status, decision)


def _launch(run: Run, action: str, attempt: int, decision: Decision) -> None:
    job = wire.job_name(run.name, run.uid, wire.KEY_STEP, attempt)
    step = StepSpec(name="key", action=action, timeout=KEY_TIMEOUT)
    decision.start.append(StartAttempt(step, attempt, job, {}, name=wire.KEY_STEP))
    decision.create_input = wire.inline_input(run.spec.input) is None
    decision.status.phase = WorkflowRunPhase.PENDING
    message = f"running the key action {action!r} (job {job}, attempt {attempt})"
    set_succeeded(decision.status, ConditionStatus.UNKNOWN, "ComputingConcurrencyKey", message, run)
