"""The Workflow's status as the triggers see it: Ready, next times, last runs.

Ready is False when the spec is invalid (an invalid cron expression is named with
croniter's reason), when cron schedules cannot be turned into CronJobs, or when the
API server refused one; True otherwise. Conditions of other types are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from kubehatch.api.common import Condition, ConditionStatus, set_condition
from kubehatch.api.wire import parse_time
from kubehatch.api.workflow import WorkflowStatus
from kubehatch_operator.triggers.crons import cron_problems, next_cron_times
from kubehatch_operator.triggers.model import WorkflowInfo
from kubehatch_operator.triggers.schedules import at_key, plan_at

READY = "Ready"
MAX_NEXT_TIMES = 10


@dataclass(frozen=True)
class Readiness:
    status: str
    reason: str
    message: str


def trigger_keys(workflow: WorkflowInfo) -> set[str]:
    """The keys status.lastTriggered may hold: one per spec entry."""
    return (
        {f"event:{e}" for e in workflow.events}
        | {f"cron:{c}" for c in workflow.crons}
        | {at_key(t) for t in workflow.at}
    )


def readiness(
    workflow: WorkflowInfo, *, image_missing: bool, cron_errors: Iterable[str] = ()
) -> Readiness:
    bad_crons = cron_problems(workflow.crons)
    if bad_crons:
        return Readiness("False", "InvalidCronSchedule", "; ".join(bad_crons))
    if workflow.problems:
        return Readiness("False", "InvalidSpec", "; ".join(workflow.problems))
    if workflow.crons and image_missing:
        return Readiness(
            "False",
            "TriggerImageMissing",
            "cron schedules need the trigger image, and the operator has none: set "
            "KUBEHATCH_TRIGGER_IMAGE on the operator (the Helm chart does)",
        )
    errors = list(cron_errors)
    if errors:
        return Readiness("False", "CronJobRejected", "; ".join(errors))
    parts = []
    if workflow.events:
        parts.append(f"{len(workflow.events)} event trigger(s)")
    if workflow.crons:
        parts.append(f"{len(dict.fromkeys(workflow.crons))} cron schedule(s)")
    if workflow.at:
        parts.append(f"{len(set(workflow.at))} one-off time(s)")
    message = ", ".join(parts) or "no triggers; runs start when a WorkflowRun is created"
    if workflow.suspend and parts:
        message += "; suspended: triggers start no runs"
    return Readiness("True", READY, message)


def next_times(workflow: WorkflowInfo, now: datetime) -> list[datetime]:
    if workflow.suspend:
        return []
    return [*next_cron_times(workflow.crons, now), *plan_at(workflow, now).pending]


def workflow_status(
    workflow: WorkflowInfo,
    now: datetime,
    *,
    ready: Readiness,
    last_triggered: dict[str, str],
) -> dict[str, Any]:
    """The status fields the triggers own, in wire form, with the Ready condition merged.

    ``last_triggered`` is the new map; entries for triggers no longer in the spec go.
    """
    try:
        old = WorkflowStatus.model_validate(workflow.status)
    except ValidationError:
        old = WorkflowStatus()  # unreadable: rewritten whole
    ready_condition = Condition(
        type=READY,
        status=ConditionStatus(ready.status),
        reason=ready.reason,
        message=ready.message[:32768],
        last_transition_time=now.replace(microsecond=0),
        observed_generation=workflow.generation,
    )
    keys = trigger_keys(workflow)
    status = WorkflowStatus(
        observed_generation=workflow.generation,
        conditions=set_condition(old.conditions, ready_condition),
        next_schedule_times=sorted(set(next_times(workflow, now)))[:MAX_NEXT_TIMES],
        last_triggered={k: v for k, v in sorted(last_triggered.items()) if k in keys},
    )
    return status.to_dict()


def ready_changed(old_status: dict[str, Any], new_status: dict[str, Any]) -> bool:
    def ready(status: dict[str, Any]) -> tuple[Any, Any]:
        found = next((c for c in status.get("conditions") or [] if c.get("type") == READY), None)
        return (found or {}).get("status"), (found or {}).get("reason")

    return ready(old_status) != ready(new_status)


def status_differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether writing ``new`` changes anything (times compared as times, not strings)."""
    for key, value in new.items():
        before = old.get(key)
        if key == "nextScheduleTimes":
            if [parse_time(t) for t in before or []] != [parse_time(t) for t in value]:
                return True
        elif key == "lastTriggered":
            if (before or {}) != value:
                return True
        elif before != value:
            return True
    return False
