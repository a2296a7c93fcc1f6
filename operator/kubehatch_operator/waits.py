"""Steps that wait without a pod: for a time, an event or a person's approval.

Pure, like every decision: the step's spec and status, the time, and what the pass
found for it (events that arrived, approvals given: `Waited`) go in; its next status
comes out. Nothing is kept but the status: a restarted operator finds the wait's start
in ``startedAt``, and the events and approvals in the cluster (see `event_log`), so the
timer and the wait are rebuilt from them. What each kind of wait comes to, and the
timeout rule, are `kubehatch.api.waiting`'s, shared with the local engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import waiting, wire
from kubehatch.api.readiness import Readiness
from kubehatch.api.step import StepSpec, WaitSpec
from kubehatch.api.waiting import (
    MAX_LOOKBACK,
    Approval,
    Failed,
    Outcome,
    SeenEvent,
    Waited,
    Waiting,
)
from kubehatch.api.workflowrun import StepPhase, StepStatus
from kubehatch_operator.conditions import parent_values
from kubehatch_operator.model import Decision, Run, StepOutput

__all__ = [
    "MAX_LOOKBACK",
    "Approval",
    "SeenEvent",
    "Waited",
    "begin_wait",
    "observe_wait",
    "since",
]


def begin_wait(step: StepSpec, current: StepStatus, now: datetime) -> StepStatus:
    """A wait whose parents are done: it starts now (its timers count from here)."""
    assert step.wait is not None
    return current.model_copy(
        update={"phase": StepPhase.RUNNING, "started_at": now, "message": step.wait.kind}
    )


def since(step: StepSpec, started: datetime) -> datetime:
    """The earliest arrival of an event the wait takes: its start, minus its lookback."""
    assert step.wait is not None
    return waiting.since(step.wait, started)


def observe_wait(
    run: Run,
    step: StepSpec,
    prior: StepStatus,
    now: datetime,
    decision: Decision,
    waited: Waited,
    outputs: Mapping[str, Any],
) -> StepStatus:
    """The waiting step's status: still waiting (woken on time), done with its output,
    or failed or timed out."""
    wait = step.wait
    assert wait is not None and prior.started_at is not None
    started, run_input, metadata = prior.started_at, run.spec.input, run.spec.additional_metadata
    outcome: Outcome
    if wait.sleep is not None:
        outcome = waiting.slept(wait, started, now)
    elif wait.until is not None:
        outcome = _until(run, step, wait, now, decision, outputs)
    elif wait.event is not None:
        # Its filter may read the parents' outputs: one that cannot be read fails the step.
        parents = parent_values(step, decision.status.steps, outputs, "wait.event.filter")
        if isinstance(parents, Readiness):
            outcome = Failed(parents.fail) if parents.fail else Waiting(now + timedelta(seconds=1))
        else:
            outcome = waiting.event(wait, started, waited.events, run_input, metadata, parents)
    else:
        outcome = waiting.approval(waited.approvals)
    outcome = waiting.timed(wait, started, now, outcome)
    if isinstance(outcome, Waiting):
        if outcome.until is not None:
            decision.wake_at = min(t for t in (decision.wake_at, outcome.until) if t is not None)
        return prior.model_copy(update={"message": outcome.message or wait.kind})
    if isinstance(outcome, Failed):
        return prior.model_copy(
            update={"phase": outcome.phase, "finished_at": now, "message": outcome.message}
        )
    name = wire.gathered_output_name(run.name, run.uid, step.name, prior.earlier_attempts)
    decision.outputs.append(StepOutput(step.name, name, json.dumps(outcome.output)))
    return prior.model_copy(
        update={
            "phase": StepPhase.SUCCEEDED,
            "finished_at": now,
            "output_config_map": name,
            "message": outcome.message,
        }
    )


def _until(
    run: Run,
    step: StepSpec,
    wait: WaitSpec,
    now: datetime,
    decision: Decision,
    outputs: Mapping[str, Any],
) -> Outcome:
    parents = parent_values(step, decision.status.steps, outputs, "wait.until")
    if isinstance(parents, Readiness):
        if parents.fail is not None:
            return Failed(parents.fail)
        decision.wake_at = now  # a parent's output is read on the next pass
        return Waiting()
    return waiting.until(wait, now, run.spec.input, run.spec.additional_metadata, parents)
