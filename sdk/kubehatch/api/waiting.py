"""What a step that waits comes to: the one definition of the rules for a time, an event
or a person's approval, and for the wait's timeout.

Pure: the step's ``wait``, when it began, the time, and what it may be waiting for
(events that arrived, answers given) go in; an outcome comes out (`Done` with the step's
output, `Failed`, or `Waiting`, maybe until a time). The operator
(``kubehatch_operator.waits``, over a run's status) and the local engine
(``kubehatch._localwaits``, over its clock) both decide with these functions, so a wait
ends with the same output, phase and message on a cluster and in a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.cel import condition, key_of
from kubehatch.api.step import OnTimeout, WaitSpec
from kubehatch.api.triggerspec import key_matches
from kubehatch.api.workflowrun import StepPhase
from kubehatch.durations import parse_duration

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
class Done:
    """The wait is over: the step succeeds with ``output``."""

    output: dict[str, Any]
    message: str | None = None
    """Kept in the step's status (an approval: who approved, and why)."""


@dataclass(frozen=True)
class Failed:
    message: str
    phase: StepPhase = StepPhase.FAILED


@dataclass
class Waiting:
    """Still waiting: until a time (None: until something comes), saying so."""

    until: datetime | None = None
    message: str = ""


Outcome = Done | Failed | Waiting


def since(wait: WaitSpec, started: datetime) -> datetime:
    """The earliest arrival of an event the wait takes: its start, minus its lookback."""
    assert wait.event is not None
    lookback = wait.event.lookback
    return started - min(parse_duration(lookback), MAX_LOOKBACK) if lookback else started


def slept(wait: WaitSpec, started: datetime, now: datetime) -> Outcome:
    """A sleep: done once its time has passed since the wait began."""
    assert wait.sleep is not None
    due = started + parse_duration(wait.sleep)
    return Done({"sleptUntil": wire.format_time(due)}) if now >= due else Waiting(due)


def until(
    wait: WaitSpec,
    now: datetime,
    run_input: Any,
    metadata: dict[str, str] | None,
    parents: dict[str, Any],
) -> Outcome:
    """A wait until the time ``wait.until`` gives (the parents' outputs read)."""
    assert wait.until is not None
    try:
        text = key_of("wait.until", wait.until, run_input, metadata, parents=parents)
    except ValueError as error:
        return Failed(str(error))
    when = wire.parse_time(text)
    if when is None:
        return Failed(f"wait.until {wait.until!r} gave {text!r}, not an RFC 3339 time")
    if now >= when:
        return Done({"waitedUntil": wire.format_time(when)})
    return Waiting(when, f"waiting until {wire.format_time(when)}")


def event(
    wait: WaitSpec,
    started: datetime,
    events: Sequence[SeenEvent],
    run_input: Any,
    metadata: dict[str, str] | None,
    parents: dict[str, Any],
) -> Outcome:
    """A wait for an event: the first (by arrival, then name) since the wait's lookback
    whose key matches and for which its filter is true."""
    spec = wait.event
    assert spec is not None
    earliest = since(wait, started)
    for seen in sorted(events, key=lambda e: (e.at, e.name)):
        if seen.at < earliest or not key_matches(spec.key, seen.key):
            continue
        if spec.filter is not None and not _accepts(
            spec.filter, run_input, metadata, seen, parents
        ):
            continue
        return Done({**seen.as_cel(), "event": seen.name})
    return Waiting()


def _accepts(
    expression: str,
    run_input: Any,
    metadata: dict[str, str] | None,
    seen: SeenEvent,
    parents: dict[str, Any],
) -> bool:
    """The wait's filter over one event; one it cannot evaluate is not the one."""
    try:
        return condition(
            "wait.event.filter", expression, run_input, metadata, parents, event=seen.as_cel()
        )
    except ValueError:
        return False


def approval(approvals: Sequence[Approval]) -> Outcome:
    """A wait for a person: the latest answer decides."""
    if not approvals:
        return Waiting()
    answer = max(approvals, key=lambda a: (a.at, a.name))
    said = f": {answer.comment}" if answer.comment else ""
    if not answer.approved:
        return Failed(f"rejected by {answer.approver}{said}")
    return Done(
        {
            "approved": True,
            "approver": answer.approver,
            "comment": answer.comment,
            "at": wire.format_time(answer.at),
        },
        f"approved by {answer.approver}{said}",
    )


def timed(wait: WaitSpec, started: datetime, now: datetime, outcome: Outcome) -> Outcome:
    """The wait's timeout over an outcome: a wait past it is TimedOut (onTimeout Fail) or
    done with ``{"timedOut": true}`` (Continue); one before it wakes by then at the latest."""
    if not isinstance(outcome, Waiting) or wait.timeout is None:
        return outcome
    deadline = started + parse_duration(wait.timeout)
    if now >= deadline:
        if wait.on_timeout is OnTimeout.CONTINUE:
            return Done({"timedOut": True})
        return Failed(
            f"{wait.kind}: nothing came within its timeout of {wait.timeout}",
            StepPhase.TIMED_OUT,
        )
    outcome.until = min(t for t in (outcome.until, deadline) if t is not None)
    return outcome
