"""Plain views of Workflow and WorkflowEvent bodies, read leniently.

A Workflow whose spec does not validate still has triggers worth reporting on (an
invalid cron expression is exactly what its status must explain), so the trigger
fields are read from the raw body rather than through the strict API models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from kubehatch.api import wire
from kubehatch.api.graph import format_path
from kubehatch.api.triggerspec import cron_trigger
from kubehatch.api.wire import parse_time
from kubehatch.api.workflow import SpecProblems, WorkflowSpec

Key = tuple[str, str]
"""(namespace, name) of an object."""


@dataclass(frozen=True)
class CronEntry:
    """One cron schedule of a Workflow: read in ``zone`` (UTC when None)."""

    schedule: str
    zone: str | None = None
    where: str = ""
    """Its place in the spec, for messages: spec.triggers.zonedCrons[0]."""

    @property
    def trigger(self) -> str:
        return cron_trigger(self.schedule, self.zone)

    @property
    def identity(self) -> tuple[str, str | None]:
        """Entries alike in this are one CronJob."""
        return (self.schedule.strip(), self.zone)


@dataclass(frozen=True)
class WorkflowInfo:
    """What the triggers need to know about one Workflow."""

    namespace: str
    name: str
    uid: str = ""
    generation: int = 1
    events: tuple[str, ...] = ()
    crons: tuple[str, ...] = ()
    at: tuple[datetime, ...] = ()
    filtered_events: tuple[tuple[str, str], ...] = ()
    """(key, CEL filter) of each spec.triggers.filteredEvents entry."""
    zoned_crons: tuple[tuple[str, str], ...] = ()
    """(schedule, time zone) of each spec.triggers.zonedCrons entry."""
    suspend: bool = False
    problems: tuple[str, ...] = ()
    """What is wrong with the spec apart from cron schedules (those are checked apart)."""
    status: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def cron_entries(self) -> tuple[CronEntry, ...]:
        """Every cron schedule of the spec, plain (UTC) then zoned, with where it is."""
        plain = (CronEntry(c, None, f"spec.triggers.crons[{i}]") for i, c in enumerate(self.crons))
        zoned = (
            CronEntry(c, z, f"spec.triggers.zonedCrons[{i}]")
            for i, (c, z) in enumerate(self.zoned_crons)
        )
        return (*plain, *zoned)

    @property
    def last_triggered(self) -> dict[str, str]:
        value = self.status.get("lastTriggered")
        return dict(value) if isinstance(value, dict) else {}


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _pairs(value: Any, first: str, second: str) -> tuple[tuple[str, str], ...]:
    """(first, second) of each object of a list that has both as strings."""
    items = value if isinstance(value, list) else []
    return tuple(
        (item[first], item[second])
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get(first), str)
        and isinstance(item.get(second), str)
    )


def _spec_problems(spec: dict[str, Any]) -> list[str]:
    """Validation problems of the spec, cron schedules and their zones left out (reported
    on their own)."""
    triggers = wire.mapping(spec.get("triggers"))
    try:
        without_crons = {**triggers, "crons": [], "zonedCrons": []}
        WorkflowSpec.model_validate({**spec, "triggers": without_crons})
    except ValidationError as err:
        problems = []
        for error in err.errors():
            found = (error.get("ctx") or {}).get("error")
            if isinstance(found, SpecProblems):  # several, each with its own path
                problems += [f"spec.{problem}" for problem in found.problems]
            else:
                where = format_path(tuple(error["loc"]))
                problems.append(
                    f"spec.{where}: {error['msg']}" if where else f"spec: {error['msg']}"
                )
        return problems
    return []


def workflow_info(body: dict[str, Any]) -> WorkflowInfo:
    """The trigger-relevant view of a Workflow body."""
    meta = body.get("metadata") or {}
    spec = wire.mapping(body.get("spec"))
    triggers = wire.mapping(spec.get("triggers"))
    problems = _spec_problems(spec)
    times = []
    for index, raw in enumerate(triggers.get("at") or []):
        parsed = parse_time(raw)
        if parsed is None:
            problems.append(
                f"spec.triggers.at[{index}]: {raw!r} is not an RFC 3339 time with a time "
                "zone; write it like 2026-06-01T12:00:00Z"
            )
        else:
            times.append(parsed)
    status = wire.mapping(body.get("status"))
    return WorkflowInfo(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 1),
        events=_strings(triggers.get("events")),
        crons=_strings(triggers.get("crons")),
        filtered_events=_pairs(triggers.get("filteredEvents"), "key", "filter"),
        zoned_crons=_pairs(triggers.get("zonedCrons"), "schedule", "timeZone"),
        at=tuple(times),
        suspend=bool(spec.get("suspend", False)),
        problems=tuple(dict.fromkeys(problems)),
        status=status,
    )


@dataclass(frozen=True)
class EventInfo:
    """What handling one WorkflowEvent needs."""

    namespace: str
    name: str
    uid: str
    generation: int
    key: str | None
    payload: dict[str, Any]
    metadata: dict[str, str]
    handled_at: datetime | None
    priority: int | None = None

    @property
    def ref(self) -> Key:
        return (self.namespace, self.name)


def event_info(body: dict[str, Any]) -> EventInfo:
    meta = body.get("metadata") or {}
    spec = wire.mapping(body.get("spec"))
    status = wire.mapping(body.get("status"))
    key = spec.get("key")
    payload = spec.get("payload")
    extra = spec.get("additionalMetadata")
    priority = spec.get("priority")
    return EventInfo(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 1),
        key=key if isinstance(key, str) and key else None,
        payload=wire.mapping(payload),
        metadata={str(k): str(v) for k, v in extra.items()} if isinstance(extra, dict) else {},
        handled_at=parse_time(status.get("handledAt")),
        priority=priority if isinstance(priority, int) and 1 <= priority <= 3 else None,
    )
