"""Steps that wait without a pod: for a time, an event or a person's approval.

Pure, like every decision: the step's spec and status, the time, and what the pass
found for it (events that arrived, approvals given: `Waited`) go in; its next status
comes out. Nothing is kept but the status: a restarted operator finds the wait's start
in ``startedAt``, and the events and approvals in the cluster (see `event_log`), so the
timer and the wait are rebuilt from them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.cel import condition, key_of
from kubehatch.api.readiness import Readiness
from kubehatch.api.step import OnTimeout, StepSpec, WaitSpec
from kubehatch.api.triggerspec import key_matches
from kubehatch.api.workflowrun import StepPhase, StepStatus
from kubehatch.durations import parse_duration
from kubehatch_operator.conditions import parent_values
from kubehatch_operator.model import Decision, Run, StepOutput

MAX_LOOKBACK = timedelta(hours=24)


@dataclass(frozen=True)
class SeenEvent:
    """A WorkflowEvent as a wait sees it."""

    name: str
    key: str
    data: dict[str, Any]
    metadata: dict[str, str]
    at: datetime

    def as_cel(self) -> dict[str, Any]:
        return {"key": self.key, "data": self.data, "metadata": self.metadata}


@dataclass(frozen=True)
class Approval:
    """A person's answer to an approval step."""

    name: str
    approved: bool
    approver: str
    at: datetime
    comment: str | None = None


@dataclass(frozen=True)
class Waited:
    """What a pass found for one waiting step."""

    events: Sequence[SeenEvent] = ()
    approvals: Sequence[Approval] = ()


@dataclass(frozen=True)
class _Done:
    output: dict[str, Any]
    message: str | None = None
    """Kept in the step's status (an approval: who approved, and why)."""


@dataclass(frozen=True)
class _Failed:
    message: str
    phase: StepPhase = StepPhase.FAILED


@dataclass
class _Waiting:
    until: datetime | None = None
    message: str = ""
    extra: list[str] = field(default_factory=list)


def begin_wait(step: StepSpec, current: StepStatus, now: datetime) -> StepStatus:
    """A wait whose parents are done: it starts now (its timers count from here)."""
    assert step.wait is not None
    return current.model_copy(
        update={"phase": StepPhase.RUNNING, "started_at": now, "message": step.wait.kind}
    )


def since(step: StepSpec, started: datetime) -> datetime:
    """The earliest arrival of an event the wait takes: its start, minus its lookback."""
    assert step.wait is not None and step.wait.event is not None
    lookback = step.wait.event.lookback
    return started - min(parse_duration(lookback), MAX_LOOKBACK) if lookback else started


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
    started = prior.started_at
    outcome: _Done | _Failed | _Waiting
    if wait.sleep is not None:
        due = started + parse_duration(wait.sleep)
        outcome = _Done({"sleptUntil": wire.format_time(due)}) if now >= due else _Waiting(due)
    elif wait.until is not None:
        outcome = _until(run, step, wait, now, decision, outputs)
    elif wait.event is not None:
        outcome = _event(run, step, wait, started, waited.events, outputs)
    else:
        outcome = _approval(waited.approvals)
    if isinstance(outcome, _Waiting) and wait.timeout is not None:
        deadline = started + parse_duration(wait.timeout)
        if now >= deadline:
            if wait.on_timeout is OnTimeout.CONTINUE:
                outcome = _Done({"timedOut": True})
            else:
                outcome = _Failed(
                    f"{wait.kind}: nothing came within its timeout of {wait.timeout}",
                    StepPhase.TIMED_OUT,
                )
        else:
            outcome.until = min(t for t in (outcome.until, deadline) if t is not None)
    if isinstance(outcome, _Waiting):
        if outcome.until is not None:
            decision.wake_at = min(t for t in (decision.wake_at, outcome.until) if t is not None)
        return prior.model_copy(update={"message": outcome.message or wait.kind})
    if isinstance(outcome, _Failed):
        return prior.model_copy(
            update={"phase": outcome.phase, "finished_at": now, "message": outcome.message}
        )
    name = wire.gathered_output_name(run.name, run.uid, step.name)
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
) -> _Done | _Failed | _Waiting:
    assert wait.until is not None
    parents = parent_values(step, decision.status.steps, outputs, "wait.until")
    if isinstance(parents, Readiness):
        if parents.fail is not None:
            return _Failed(parents.fail)
        decision.wake_at = now  # a parent's output is read on the next pass
        return _Waiting()
    try:
        text = key_of(
            "wait.until",
            wait.until,
            run.spec.input,
            run.spec.additional_metadata,
            parents=parents,
        )
    except ValueError as error:
        return _Failed(str(error))
    when = wire.parse_time(text)
    if when is None:
        return _Failed(f"wait.until {wait.until!r} gave {text!r}, not an RFC 3339 time")
    if now >= when:
        return _Done({"waitedUntil": wire.format_time(when)})
    return _Waiting(when, f"waiting until {wire.format_time(when)}")


def _event(
    run: Run,
    step: StepSpec,
    wait: WaitSpec,
    started: datetime,
    events: Sequence[SeenEvent],
    outputs: Mapping[str, Any],
) -> _Done | _Failed | _Waiting:
    assert wait.event is not None
    spec, earliest = wait.event, since(step, started)
    parents = {p: outputs[p] for p in step.parents if p in outputs}
    for event in sorted(events, key=lambda e: (e.at, e.name)):
        if event.at < earliest or not key_matches(spec.key, event.key):
            continue
        if spec.filter is not None and not _accepts(spec.filter, run, event, parents):
            continue
        return _Done({**event.as_cel(), "event": event.name})
    return _Waiting()


def _accepts(expression: str, run: Run, event: SeenEvent, parents: dict[str, Any]) -> bool:
    """The wait's filter over one event; one it cannot evaluate is not the one."""
    try:
        return condition(
            "wait.event.filter",
            expression,
            run.spec.input,
            run.spec.additional_metadata,
            parents,
            event=event.as_cel(),
        )
    except ValueError:
        return False


def _approval(approvals: Sequence[Approval]) -> _Done | _Failed | _Waiting:
    if not approvals:
        return _Waiting()
    answer = max(approvals, key=lambda a: (a.at, a.name))
    said = f": {answer.comment}" if answer.comment else ""
    if not answer.approved:
        return _Failed(f"rejected by {answer.approver}{said}")
    return _Done(
        {
            "approved": True,
            "approver": answer.approver,
            "comment": answer.comment,
            "at": wire.format_time(answer.at),
        },
        f"approved by {answer.approver}{said}",
    )
