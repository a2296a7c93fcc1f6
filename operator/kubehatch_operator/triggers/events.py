"""Events: which Workflows a WorkflowEvent starts, the runs it creates, its status.

A key matches a trigger exactly, or a trigger ending in ``*`` matches every key that
starts with what comes before it (``user:*`` matches ``user:created``; a lone ``*``
matches everything). A ``*`` anywhere else is an ordinary character. Only Workflows in
the event's namespace that are not suspended are started.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.common import Condition, ConditionStatus
from kubehatch.api.workflowevent import WorkflowEventStatus
from kubehatch.api.workflowrun import TriggerType
from kubehatch_operator.triggers.model import EventInfo, WorkflowInfo
from kubehatch_operator.triggers.runs import trigger_run

HANDLED = "Handled"


def key_matches(pattern: str, key: str) -> bool:
    """Whether an event ``key`` matches one ``spec.triggers.events`` entry."""
    if pattern.endswith("*"):
        return key.startswith(pattern[:-1])
    return pattern == key


def matching_pattern(workflow: WorkflowInfo, key: str) -> str | None:
    """The entry of the workflow that the key matches; an exact entry wins over a wildcard."""
    if key in workflow.events:
        return key
    return next((p for p in workflow.events if key_matches(p, key)), None)


@dataclass(frozen=True)
class Match:
    workflow: str
    pattern: str


@dataclass(frozen=True)
class Matches:
    runs: list[Match]
    suspended: list[str]
    """Workflows that listen for the key but are suspended (reported, not started)."""


def match_workflows(event: EventInfo, workflows: Iterable[WorkflowInfo]) -> Matches:
    """The Workflows the event starts, sorted by name (one run each)."""
    runs, suspended = [], []
    if event.key is not None:
        for workflow in sorted(workflows, key=lambda w: w.name):
            if workflow.namespace != event.namespace:
                continue
            pattern = matching_pattern(workflow, event.key)
            if pattern is None:
                continue
            if workflow.suspend:
                suspended.append(workflow.name)
            else:
                runs.append(Match(workflow.name, pattern))
    return Matches(runs, suspended)


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
        trigger=f"event:{match.pattern}",
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
        if names:
            plan.reason = "RunsCreated"
            plan.message = f"started {len(names)} run(s): {', '.join(names)}"
        else:
            plan.reason = "NoMatchingWorkflow"
            plan.message = (
                f"no Workflow in namespace {event.namespace!r} listens for {event.key!r} "
                "(spec.triggers.events); nothing was started"
            )
        if matches.suspended:
            plan.message += f"; suspended, not started: {', '.join(matches.suspended)}"
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
