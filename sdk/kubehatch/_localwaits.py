"""Steps that wait, in the local engine: a time on the engine's clock, the events and
approvals the caller gives, with the rules of :mod:`kubehatch.api.waiting`.

* ``Sleep`` and ``WaitUntil`` advance the clock (a :class:`~kubehatch.testing.FakeClock`
  at once; the system's clock really waits);
* ``WaitForEvent`` takes the first of the given events (``events=[(key, data)]``, or
  ``(key, data, metadata)``, or ``(key, data, metadata, at)``) whose key matches and for
  which its filter is true, as on a cluster. An event arrives when the wait begins,
  unless given its time ``at`` (a later one is waited for, an earlier one counts
  within the wait's lookback); the events are named ``local-event-1``, ``-2``...;
* ``Approval`` takes the answer given for its step (``approvals={"step": True}``, or
  ``(False, "why")``), given by "local" when the wait begins;
* when nothing comes, the wait's timeout rules: TimedOut (onTimeout Fail) or
  ``{"timedOut": true}`` (Continue), once the clock has reached it. A wait with no
  timeout for which nothing was given fails at once, saying what to pass: locally,
  nothing else can come.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubehatch._localattempts import Clock, Ended
from kubehatch.api import waiting
from kubehatch.api.readiness import Readiness
from kubehatch.api.step import StepSpec, WaitSpec
from kubehatch.api.workflow import WorkflowSpec
from kubehatch.api.workflowrun import StepPhase
from kubehatch.errors import KubehatchError, StepTimeoutError

APPROVER = "local"
Answer = bool | tuple[bool, str | None]
"""An approval given to a local run: approved or not, maybe with a comment."""


@dataclass(frozen=True)
class LocalEvent:
    name: str
    key: str
    data: dict[str, Any]
    metadata: dict[str, str]
    at: datetime | None = None


@dataclass(frozen=True)
class Given:
    """What waiting steps may get in a local run: events, and answers by step."""

    events: tuple[LocalEvent, ...] = ()
    approvals: Mapping[str, tuple[bool, str | None]] = field(default_factory=dict)


def given(
    events: Iterable[Any] | None,
    approvals: Mapping[str, Answer] | None,
    spec: WorkflowSpec,
    workflow: str,
) -> Given:
    """Events and approvals as ``run_local`` takes them, checked (an approval is for an
    approval step of the workflow, or ``<child run>/<step>``)."""
    found = []
    for number, event in enumerate(events or (), start=1):
        if not isinstance(event, tuple | list) or not 2 <= len(event) <= 4:
            raise KubehatchError(
                f"event {number}: give (key, data), (key, data, metadata) or "
                f"(key, data, metadata, at), not {event!r}"
            )
        key, data, metadata, at = (*event, None, None)[:4]
        if not isinstance(key, str) or not isinstance(data, dict):
            raise KubehatchError(f"event {number}: the key is a string, the data a dict")
        if at is not None and (not isinstance(at, datetime) or at.tzinfo is None):
            raise KubehatchError(f"event {number}: its time is a timezone-aware datetime")
        metadata = {str(k): str(v) for k, v in dict(metadata or {}).items()}
        found.append(LocalEvent(f"local-event-{number}", key, data, metadata, at))
    answers: dict[str, tuple[bool, str | None]] = {}
    for step, answer in (approvals or {}).items():
        approved, comment = answer if isinstance(answer, tuple) else (answer, None)
        if not isinstance(approved, bool):
            raise KubehatchError(f"approvals[{step!r}]: True, False or (bool, comment)")
        answers[step] = (approved, comment)
    asking = {s.name for s in spec.all_steps if s.wait is not None and s.wait.approval}
    unknown = sorted(k for k in answers if "/" not in k and k not in asking)
    if unknown:
        raise KubehatchError(
            f"approvals for {', '.join(unknown)}: workflow {workflow!r} has no approval step "
            f"of that name (approval steps: {', '.join(sorted(asking)) or 'none'})"
        )
    return Given(tuple(found), answers)


@dataclass
class WaitEnd(Ended):
    run_timed_out: bool = False
    """The run's timeout came first: the step is stopped (TimedOut), the run times out."""


def wait_locally(
    step: StepSpec,
    answer_key: str,
    clock: Clock,
    deadline: datetime | None,
    things: Given,
    run_input: Any,
    metadata: dict[str, str],
    parents: dict[str, Any] | Readiness,
) -> WaitEnd:
    """Wait as ``step.wait`` says, from now; ``deadline`` is the run's (None: none),
    ``parents`` the outputs of the parents that succeeded (or why one cannot be read),
    ``answer_key`` the key of the step's answer in ``things.approvals``."""
    wait = step.wait
    assert wait is not None
    started = clock.now()
    answer = things.approvals.get(answer_key)
    approvals = (
        [waiting.Approval("local", answer[0], APPROVER, started, answer[1])] if answer else []
    )
    events = [
        waiting.SeenEvent(e.name, e.key, e.data, e.metadata, e.at or started) for e in things.events
    ]
    values = {} if isinstance(parents, Readiness) else parents
    while True:
        now = clock.now()
        if wait.sleep is not None:
            outcome = waiting.slept(wait, started, now)
        elif wait.until is not None:
            if isinstance(parents, Readiness):
                outcome = waiting.Failed(parents.fail or "wait.until cannot read its parents")
            else:
                outcome = waiting.until(wait, now, run_input, metadata, values)
        elif wait.event is not None:
            arrived = [e for e in events if e.at <= now]
            outcome = waiting.event(wait, started, arrived, run_input, metadata, values)
            later = [e.at for e in events if e.at > now]
            if isinstance(outcome, waiting.Waiting) and later:
                outcome.until = min(later)
        else:
            outcome = waiting.approval(approvals)
        outcome = waiting.timed(wait, started, now, outcome)
        if isinstance(outcome, waiting.Done):
            return WaitEnd(StepPhase.SUCCEEDED, 1, outcome.output, outcome.message)
        if isinstance(outcome, waiting.Failed):
            error_type = (
                StepTimeoutError if outcome.phase is StepPhase.TIMED_OUT else KubehatchError
            )
            return WaitEnd(outcome.phase, 1, None, outcome.message, error_type(outcome.message))
        if outcome.until is None:
            message = _nothing_given(wait, answer_key)
            return WaitEnd(StepPhase.FAILED, 1, None, message, KubehatchError(message))
        if deadline is not None and outcome.until >= deadline:
            clock.sleep(max((deadline - now).total_seconds(), 0))
            return WaitEnd(StepPhase.TIMED_OUT, 1, run_timed_out=True)
        clock.sleep(max((outcome.until - now).total_seconds(), 1e-6))


def _nothing_given(wait: WaitSpec, step: str) -> str:
    if wait.event is not None:
        key = wait.event.key
        return (
            f"{wait.kind}: the local engine has no such event, and the wait has no timeout; "
            f"pass events=[({key!r}, {{...}})] to run_local or run_workflow "
            f"(kubehatch run --local --event '{key}={{...}}')"
        )
    return (
        f"{wait.kind}: the local engine has no answer for step {step!r}, and the wait has no "
        f"timeout; pass approvals={{{step!r}: True}} to run_local or run_workflow "
        f"(kubehatch run --local --approve {step} or --reject {step})"
    )
