"""Events: which Workflows a WorkflowEvent starts, the runs it creates, its status.

A key matches a trigger exactly, or a trigger ending in ``*`` matches every key that
starts with what comes before it (``user:*`` matches ``user:created``; a lone ``*``
matches everything). A ``*`` anywhere else is an ordinary character. Only Workflows in
the event's namespace that are not suspended are started.

An entry of ``spec.triggers.filteredEvents`` also needs its CEL filter to be true for the
event. A filter that fails to evaluate (a field the payload lacks, a result that is not
a bool) starts no run: the event's Handled condition turns False with reason
FilterFailed, and its message (and the Warning Event posted on it) names the workflow,
the filter and the error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import triggerspec, wire
from kubehatch.api.common import Condition, ConditionStatus
from kubehatch.api.triggerspec import event_trigger, filter_accepts
from kubehatch.api.workflowevent import WorkflowEventStatus
from kubehatch.api.workflowrun import TriggerType
from kubehatch_operator.triggers.model import EventInfo, WorkflowInfo
from kubehatch_operator.triggers.runs import trigger_run

HANDLED = "Handled"


def key_matches(pattern: str, key: str) -> bool:
    """Whether an event ``key`` matches one ``spec.triggers.events`` entry."""
    return triggerspec.key_matches(pattern, key)


def matching_pattern(workflow: WorkflowInfo, key: str) -> str | None:
    """The entry of the workflow that the key matches; an exact entry wins over a wildcard."""
    if key in workflow.events:
        return key
    return next((p for p in workflow.events if key_matches(p, key)), None)


@dataclass(frozen=True)
class Match:
    workflow: str
    pattern: str
    filter: str | None = None
    """The filter that accepted the event, for an entry of spec.triggers.filteredEvents."""

    @property
    def trigger(self) -> str:
        """The entry, as status.lastTriggered and the run's annotation name it."""
        return event_trigger(self.pattern, self.filter)


@dataclass(frozen=True)
class FilterFailure:
    """A filter that could not be evaluated for the event: that entry starts no run."""

    workflow: str
    key: str
    filter: str
    error: str

    def __str__(self) -> str:
        return (
            f"workflow {self.workflow!r}: the filter {self.filter!r} of its event trigger "
            f"{self.key!r} failed, so it started no run: {self.error}"
        )


@dataclass(frozen=True)
class Matches:
    runs: list[Match]
    suspended: list[str]
    """Workflows that listen for the key but are suspended (reported, not started)."""
    filtered_out: list[str] = field(default_factory=list)
    """Workflows whose only matching entries have filters that are false for the event."""
    failures: list[FilterFailure] = field(default_factory=list)


def _filtered_match(
    event: EventInfo, workflow: WorkflowInfo, failures: list[FilterFailure]
) -> Match | None:
    """The filtered entry that accepts the event (exact keys first, then prefixes, each
    in spec order), or None; the filters that failed are added to ``failures``."""
    assert event.key is not None
    entries = [(k, f) for k, f in workflow.filtered_events if k == event.key]
    entries += [(k, f) for k, f in workflow.filtered_events if k != event.key]
    for pattern, text in entries:
        if not key_matches(pattern, event.key):
            continue
        try:
            accepted = filter_accepts(
                text, event.key, event.payload, event.metadata, event.priority
            )
        except ValueError as err:
            failures.append(FilterFailure(workflow.name, pattern, text, str(err)))
            continue
        if accepted:
            return Match(workflow.name, pattern, text)
    return None


def match_workflows(event: EventInfo, workflows: Iterable[WorkflowInfo]) -> Matches:
    """The Workflows the event starts, sorted by name (one run each).

    A plain entry that matches starts the run without evaluating any filter; otherwise the
    first filtered entry whose filter is true does. A filter that fails to evaluate is
    reported, and the next entry is tried.
    """
    matches = Matches([], [])
    if event.key is None:
        return matches
    for workflow in sorted(workflows, key=lambda w: w.name):
        if workflow.namespace != event.namespace:
            continue
        pattern = matching_pattern(workflow, event.key)
        listens = pattern is not None or any(
            key_matches(k, event.key) for k, _ in workflow.filtered_events
        )
        if not listens:
            continue
        if workflow.suspend:
            matches.suspended.append(workflow.name)
        elif pattern is not None:
            matches.runs.append(Match(workflow.name, pattern))
        else:
            found = _filtered_match(event, workflow, matches.failures)
            if found is not None:
                matches.runs.append(found)
            elif not any(f.workflow == workflow.name for f in matches.failures):
                matches.filtered_out.append(workflow.name)
    return matches


def run_name(workflow: str, event_uid: str) -> str:
    """The run an event makes for a workflow: the same on every attempt, unique per event."""
    return wire.bounded(f"{workflow}-{wire.digest(event_uid, 16)}", 253)


def event_run(event: EventInfo, match: Match) -> dict[str, Any]:
    annotations = (
        {wire.ANNOTATION_EVENT_METADATA: json.dumps(event.metadata, sort_keys=True)}
        if event.metadata
        else {}
    )
    return trigger_run(
        namespace=event.namespace,
        name=run_name(match.workflow, event.uid),
        workflow=match.workflow,
        trigger_type=TriggerType.EVENT,
        trigger=match.trigger,
        source=f"{event.name} ({event.key})",
        input=event.payload,
        labels={wire.LABEL_EVENT: wire.label_value(event.name)},
        annotations=annotations,
        additional_metadata=event.metadata,
        priority=event.priority,
    )


@dataclass
class EventPlan:
    """What handling an event does: create these runs, then write this status."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    message: str = ""
    warning: bool = False


def plan_event(event: EventInfo, workflows: Iterable[WorkflowInfo], now: datetime) -> EventPlan:
    """Runs for every matching workflow, and the status that records them."""
    plan = EventPlan()
    if event.key is None:
        plan.reason, plan.warning = "InvalidEvent", True
        plan.message = (
            f"WorkflowEvent {event.name!r} has no spec.key; set it to the key the workflows "
            "listen for (spec.triggers.events), e.g. user:created"
        )
    else:
        matches = match_workflows(event, workflows)
        plan.matches = matches.runs
        plan.runs = [event_run(event, m) for m in matches.runs]
        names = [r["metadata"]["name"] for r in plan.runs]
        parts = [str(failure) for failure in matches.failures]
        if names:
            parts.append(f"started {len(names)} run(s): {', '.join(names)}")
        if matches.filtered_out:
            parts.append(f"filtered out (filter false): {', '.join(matches.filtered_out)}")
        if matches.suspended:
            parts.append(f"suspended, not started: {', '.join(matches.suspended)}")
        if matches.failures:
            plan.reason, plan.warning = "FilterFailed", True
        elif names:
            plan.reason = "RunsCreated"
        elif matches.filtered_out:
            plan.reason = "FilteredOut"
        else:
            plan.reason = "NoMatchingWorkflow"
            parts.insert(
                0,
                f"no Workflow in namespace {event.namespace!r} listens for {event.key!r} "
                "(spec.triggers.events); nothing was started",
            )
        plan.message = "; ".join(parts)
    handled = now.replace(microsecond=0)
    plan.status = WorkflowEventStatus(
        observed_generation=event.generation,
        runs=[r["metadata"]["name"] for r in plan.runs],
        handled_at=handled,
        conditions=[
            Condition(
                type=HANDLED,
                status=ConditionStatus.FALSE if plan.warning else ConditionStatus.TRUE,
                reason=plan.reason,
                message=plan.message[:32768],
                last_transition_time=handled,
                observed_generation=event.generation,
            )
        ],
    ).to_dict()
    return plan


def deletion_due(handled_at: datetime, retention: timedelta) -> datetime:
    """When a handled event is deleted: its runs exist by then, and carry its payload."""
    return handled_at + retention
