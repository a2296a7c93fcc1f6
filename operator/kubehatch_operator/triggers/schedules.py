"""One-off times: each ``spec.triggers.at`` time starts exactly one run.

Once and never twice, even across operator restarts: a time fires when it is due and
the workflow is not suspended, its run has a deterministic name (workflow and time), and
the Workflow's ``status.lastTriggered["at:<time>"]`` records it. A time recorded there
never fires again, even after its run was deleted (TTL, history limit); an operator
killed between creating the run and recording it creates the same name again, a 409.

A time that is already past when the operator first sees it (a Workflow created or
resumed after its time, or an operator that was down at that moment) fires at once:
a missed one-off run is more surprising than a late one. Its run's spec.scheduledAt
still says when it was meant to start. Nothing fires while the Workflow is suspended; a
time that passed meanwhile fires when it is resumed, by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubehatch.api import wire
from kubehatch.api.wire import format_time
from kubehatch.api.workflowrun import TriggerType
from kubehatch_operator.triggers.model import WorkflowInfo
from kubehatch_operator.triggers.runs import trigger_run


def at_key(when: datetime) -> str:
    """The trigger's key in status.lastTriggered and the runs' annotation."""
    return f"at:{format_time(when)}"


def run_name(workflow: str, when: datetime) -> str:
    when = when.astimezone(UTC)
    stamp = when.strftime("%Y%m%d-%H%M%S") + (
        f"-{when.microsecond:06d}" if when.microsecond else ""
    )
    return wire.bounded(f"{workflow}-at-{stamp}", 253)


def at_run(workflow: WorkflowInfo, when: datetime) -> dict[str, Any]:
    return trigger_run(
        namespace=workflow.namespace,
        name=run_name(workflow.name, when),
        workflow=workflow.name,
        trigger_type=TriggerType.SCHEDULE,
        trigger=at_key(when),
        source=f"spec.triggers.at {format_time(when)}",
        scheduled_at=when,
    )


@dataclass
class AtPlan:
    fire: list[datetime] = field(default_factory=list)
    """Due times that have not fired: create their runs now."""
    pending: list[datetime] = field(default_factory=list)
    """Future times, soonest first: the operator wakes at the first."""


def plan_at(workflow: WorkflowInfo, now: datetime) -> AtPlan:
    """Which times fire now and which wait; nothing fires while the workflow is suspended."""
    plan = AtPlan()
    if workflow.suspend:
        return plan
    fired = workflow.last_triggered
    for when in sorted(set(workflow.at)):
        if at_key(when) in fired:
            continue
        (plan.fire if when <= now else plan.pending).append(when)
    return plan
