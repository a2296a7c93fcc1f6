"""The Workflow's status as the triggers see it: Ready, next times, last runs.

Ready is False when the spec is invalid (an invalid cron expression is named with
croniter's reason, an unknown time zone with the closest known one), when cron schedules
cannot be turned into CronJobs, or when the API server refused one; True otherwise.
The next times are computed in each schedule's zone: ``cronSchedules`` shows them with
the zone's offset, ``nextScheduleTimes`` (the printer column) in UTC. Conditions of other
types are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kubehatch.api.common import Condition, ConditionStatus, set_condition
from kubehatch.api.triggerspec import CronTimes, event_trigger
from kubehatch.api.wire import parse_time
from kubehatch.api.workflow import WorkflowStatus
from kubehatch_operator.triggers.crons import cron_problems, cron_times, zone_problems
from kubehatch_operator.triggers.model import WorkflowInfo
from kubehatch_operator.triggers.schedules import at_key, plan_at

READY = "Ready"
MAX_NEXT_TIMES = 10
TIMES_PER_SCHEDULE = 3
"""Next times listed per schedule in status.cronSchedules."""


@dataclass(frozen=True)
class Readiness:
    status: str
    reason: str
    message: str


def trigger_keys(workflow: WorkflowInfo) -> set[str]:
    """The keys status.lastTriggered may hold: one per spec entry."""
    return (
        {event_trigger(e) for e in workflow.events}
        | {event_trigger(key, text) for key, text in workflow.filtered_events}
        | {entry.trigger for entry in workflow.cron_entries}
        | {at_key(t) for t in workflow.at}
    )


def readiness(
    workflow: WorkflowInfo, *, image_missing: bool, cron_errors: Iterable[str] = ()
) -> Readiness:
    crons = workflow.cron_entries
    bad_crons = cron_problems(crons)
    if bad_crons:
        return Readiness("False", "InvalidCronSchedule", "; ".join(bad_crons))
    bad_zones = zone_problems(crons)
    if bad_zones:
        return Readiness("False", "InvalidTimeZone", "; ".join(bad_zones))
    if workflow.problems:
        return Readiness("False", "InvalidSpec", "; ".join(workflow.problems))
    if crons and image_missing:
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
    events = len(workflow.events) + len(workflow.filtered_events)
    if events:
        parts.append(f"{events} event trigger(s)")
    if crons:
        parts.append(f"{len(dict.fromkeys(c.identity for c in crons))} cron schedule(s)")
    if workflow.at:
        parts.append(f"{len(set(workflow.at))} one-off time(s)")
    message = ", ".join(parts) or "no triggers; runs start when a WorkflowRun is created"
    if workflow.suspend and parts:
        message += "; suspended: triggers start no runs"
    return Readiness("True", READY, message)


def next_times(workflow: WorkflowInfo, now: datetime) -> list[datetime]:
    """The next time of each schedule and the pending one-off times, in UTC."""
    if workflow.suspend:
        return []
    crons = [times[0] for _, times in cron_times(workflow.cron_entries, now, 1)]
    return [*(t.astimezone(UTC) for t in crons), *plan_at(workflow, now).pending]


def schedule_times(workflow: WorkflowInfo, now: datetime) -> list[CronTimes]:
    """Each valid schedule's next times, with its zone's offset (none while suspended)."""
    if workflow.suspend:
        return []
    return [
        CronTimes(schedule=entry.schedule, time_zone=entry.zone or "UTC", next_times=times)
        for entry, times in cron_times(workflow.cron_entries, now, TIMES_PER_SCHEDULE)
    ]


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
        cron_schedules=schedule_times(workflow, now),
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
        elif key == "cronSchedules":
            if _schedules(before) != _schedules(value):
                return True
        elif key == "lastTriggered":
            if (before or {}) != value:
                return True
        elif before != value:
            return True
    return False


def _schedules(value: Any) -> list[tuple[Any, Any, list[datetime | None]]]:
    """status.cronSchedules with its times parsed (the API server keeps the strings)."""
    return [
        (s.get("schedule"), s.get("timeZone"), [parse_time(t) for t in s.get("nextTimes") or []])
        for s in (value if isinstance(value, list) else [])
        if isinstance(s, dict)
    ]
