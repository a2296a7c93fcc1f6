"""What the dashboard shows, shaped from raw API objects: pure functions, no I/O.

Objects are read leniently (``wire.mapping``), not through the pydantic models: the
dashboard must show a run the models of this version would refuse (one written by a newer
operator, or with more steps than a Workflow may have today) rather than fail on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubehatch.api import wire

FINISHED = frozenset({"Succeeded", "Failed", "Cancelled", "TimedOut"})
HOOKS = (("onFailure", "on failure"), ("onSuccess", "on success"), ("onExit", "on exit"))
MAX_NEXT_TIMES = 3


def lean(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without its managedFields (noise, and often the larger part)."""
    meta = {k: v for k, v in wire.mapping(obj.get("metadata")).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _succeeded_condition(status: dict[str, Any]) -> dict[str, Any]:
    for condition in status.get("conditions") or []:
        if wire.mapping(condition).get("type") == "Succeeded":
            return wire.mapping(condition)
    return {}


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """One row of the runs list: small, whatever the size of the run."""
    meta = wire.mapping(run.get("metadata"))
    spec = wire.mapping(run.get("spec"))
    status = wire.mapping(run.get("status"))
    condition = _succeeded_condition(status)
    labels = wire.mapping(meta.get("labels"))
    trigger = wire.mapping(spec.get("triggeredBy"))
    phase = status.get("phase") or "Pending"
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "workflow": wire.mapping(spec.get("workflowRef")).get("name"),
        "phase": phase,
        "progress": status.get("progress"),
        "created": meta.get("creationTimestamp"),
        "started": status.get("startedAt"),
        "finished": status.get("finishedAt"),
        "duration": status.get("duration"),
        "trigger": trigger.get("type") or "Manual",
        "source": trigger.get("source"),
        "priority": spec.get("priority"),
        "cancelRequested": bool(spec.get("cancel")),
        # Why it waits (Queued, or Pending on a missing Workflow) or why it ended.
        "reason": condition.get("reason"),
        "message": condition.get("message"),
        "concurrencyKey": status.get("concurrencyKey"),
        "parent": labels.get(wire.LABEL_PARENT_RUN),
        "labels": labels,
    }


def created_between(run: dict[str, Any], since: datetime | None, until: datetime | None) -> bool:
    created = wire.parse_time(wire.mapping(run.get("metadata")).get("creationTimestamp"))
    if created is None:
        return since is None and until is None
    return (since is None or created >= since) and (until is None or created < until)


def field_selector(workflow: str | None, phase: str | None) -> str:
    """The run fields the CRD makes selectable: the API server filters, not us."""
    fields = []
    if workflow:
        fields.append(f"spec.workflowRef.name={workflow}")
    if phase:
        fields.append(f"status.phase={phase}")
    return ",".join(fields)


def next_times(spec: dict[str, Any], status: dict[str, Any], now: datetime) -> list[str]:
    """The next trigger times: the operator's (status), else computed from the crons."""
    known = [t for t in status.get("nextScheduleTimes") or [] if isinstance(t, str)]
    if known:
        return known[:MAX_NEXT_TIMES]
    from croniter import croniter

    triggers = wire.mapping(spec.get("triggers"))
    times: list[datetime] = []
    for schedule in triggers.get("crons") or []:
        try:
            it = croniter(str(schedule), now)
            times.extend(it.get_next(datetime) for _ in range(MAX_NEXT_TIMES))
        except (ValueError, KeyError):
            continue
    for at in triggers.get("at") or []:
        moment = wire.parse_time(at)
        if moment is not None and moment > now:
            times.append(moment)
    return [wire.format_time(t.astimezone(UTC)) for t in sorted(times)[:MAX_NEXT_TIMES]]


def workflow_summary(workflow: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """One Workflow as the workflows page shows it."""
    meta = wire.mapping(workflow.get("metadata"))
    spec = wire.mapping(workflow.get("spec"))
    status = wire.mapping(workflow.get("status"))
    triggers = wire.mapping(spec.get("triggers"))
    ready = next(
        (
            wire.mapping(c)
            for c in status.get("conditions") or []
            if wire.mapping(c).get("type") == "Ready"
        ),
        {},
    )
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "description": spec.get("description"),
        "steps": len(spec.get("steps") or []),
        "hooks": [label for key, label in HOOKS if spec.get(key)],
        "events": [
            *(str(k) for k in triggers.get("events") or []),
            *(str(wire.mapping(f).get("key")) for f in triggers.get("filteredEvents") or []),
        ],
        "crons": [
            *(str(c) for c in triggers.get("crons") or []),
            *(
                f"{wire.mapping(z).get('schedule')} ({wire.mapping(z).get('timeZone')})"
                for z in triggers.get("zonedCrons") or []
            ),
        ],
        "at": [str(t) for t in triggers.get("at") or []],
        "nextTimes": next_times(spec, status, now or datetime.now(UTC)),
        "concurrency": spec.get("concurrency"),
        "defaultPriority": spec.get("defaultPriority"),
        "suspend": bool(spec.get("suspend")),
        "inputSchema": spec.get("inputSchema"),
        "lastTriggered": status.get("lastTriggered") or {},
        "ready": ready.get("status"),
        "readyMessage": ready.get("message"),
    }


def event_summary(event: dict[str, Any]) -> dict[str, Any]:
    """A WorkflowEvent and the runs it started."""
    meta = wire.mapping(event.get("metadata"))
    spec = wire.mapping(event.get("spec"))
    status = wire.mapping(event.get("status"))
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "created": meta.get("creationTimestamp"),
        "key": spec.get("key"),
        "payload": spec.get("payload") or {},
        "priority": spec.get("priority"),
        "runs": list(status.get("runs") or []),
        "handled": status.get("handledAt"),
    }


def kube_event(event: Any) -> dict[str, Any]:
    """A core/v1 Event (a kubernetes client model) about a run."""
    last = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
    return {
        "type": event.type,
        "reason": event.reason,
        "message": event.message,
        "count": event.count or 1,
        "time": wire.format_time(last) if last is not None else None,
    }


def step_delta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The steps of ``new`` that differ from ``old`` (what a live run page is sent)."""
    return {name: step for name, step in new.items() if old.get(name) != step}


def sort_newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: str(r.get("created") or ""), reverse=True)
