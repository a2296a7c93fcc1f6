"""The long forms of event and cron triggers: an event key with a CEL filter, a cron
schedule in a time zone.

``spec.triggers.events`` and ``spec.triggers.crons`` stay lists of strings (what most
workflows need, and what existing manifests hold). A structural CRD schema cannot say
"a string or an object" for one list item (``x-kubernetes-int-or-string`` is for
numbers only; anything else would switch validation and ``kubectl explain`` off for
the item), so the entries that need more than a string have lists of their own:
``filteredEvents`` (``{key, filter}``) and ``zonedCrons`` (``{schedule, timeZone}``),
both fully typed, explained and validated by the API server.

Event-key matching lives here too: the operator and the client (which checks an
event's payload against the Workflows it would start) must agree on it.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, WithJsonSchema

from kubehatch.api import cel
from kubehatch.api.common import ApiModel, StatusModel
from kubehatch.api.fields import CelExpression, CronSchedule, EventKey

MAX_EVENT_FILTERS = 50
MAX_ZONED_CRONS = 50


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone this machine knows, or None."""
    if not name.strip() or name.lower() == "local":
        return "name the zone; use an IANA name such as 'Europe/Paris', 'America/New_York' or 'UTC'"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(name, _zones(), n=1, cutoff=0.6)
        close = close or [z for z in _zones() if z.lower() == name.lower()][:1]
        hint = f"did you mean {close[0]!r}? " if close else ""
        return (
            f"{hint}use an IANA time zone name such as 'Europe/Paris', 'America/New_York' or 'UTC'"
        )
    return None


def _check_zone(value: str) -> str:
    problem = zone_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} is not a time zone: {problem}")
    return value


def _zone_name(value: Any) -> Any:
    """Accept a ``ZoneInfo`` from Python callers; the API stores its key."""
    return value.key if isinstance(value, ZoneInfo) else value


TimeZone = Annotated[
    str,
    BeforeValidator(_zone_name),
    AfterValidator(_check_zone),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 64}),
]
"""An IANA time zone name (Europe/Paris), checked with zoneinfo; the CRD checks only its
length, so the operator also reports an unknown zone on the Workflow's Ready condition."""


class FilteredEvent(ApiModel):
    """An event key with a CEL filter: a matching event starts a run if the filter is true."""

    key: EventKey = Field(
        description="Event key, exact or ending in '*' (a prefix), as in spec.triggers.events."
    )
    filter: CelExpression = Field(
        description=(
            "CEL over the event: `event.key`, `event.data` (the payload, the run's input), "
            "`event.metadata` (its additionalMetadata), also bound as `input` and "
            "`additional_metadata`; e.g. `event.data.amount > 100`. It must give true or "
            "false; an event whose filter fails to evaluate starts no run, and its "
            "WorkflowEvent says why."
        )
    )


class ZonedCron(ApiModel):
    """A cron schedule read in a time zone (the CronJob's spec.timeZone)."""

    schedule: CronSchedule = Field(
        description="Five fields 'minute hour day-of-month month day-of-week', e.g. 0 9 * * 1-5."
    )
    time_zone: TimeZone = Field(
        description=(
            "IANA time zone the schedule is read in, e.g. Europe/Paris; daylight-saving "
            "changes follow the zone (a time skipped by the change does not fire that day, "
            "a time repeated fires once)."
        )
    )


def key_matches(pattern: str, key: str) -> bool:
    """Whether event ``key`` matches one trigger entry: exactly, or after a ``prefix*``."""
    return key.startswith(pattern[:-1]) if pattern.endswith("*") else pattern == key


def event_activation(
    key: str, payload: dict[str, Any], metadata: dict[str, str], priority: int | None
) -> dict[str, Any]:
    """The ``event`` variable a filter sees."""
    event: dict[str, Any] = {"key": key, "data": payload, "metadata": dict(metadata)}
    if priority is not None:
        event["priority"] = priority
    return event


def filter_accepts(
    expression: str,
    key: str,
    payload: dict[str, Any],
    metadata: dict[str, str] | None = None,
    priority: int | None = None,
) -> bool:
    """Whether an event passes ``expression``; ``ValueError`` saying why when the filter
    does not parse, fails (a missing field, say) or gives anything but true or false."""
    event = event_activation(key, payload, metadata or {}, priority)
    return cel.condition("filter", expression, payload, metadata, {}, event=event)


def repeated_wall_time(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether ``moment``, read in ``zone``, is the second occurrence of a wall time that
    the autumn change repeats (02:30 CET after 02:30 CEST)."""
    local = moment.astimezone(zone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def zoned_times(schedule: str, zone: str | None, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` times of ``schedule`` after ``after``, read in ``zone`` (UTC if
    None), as aware datetimes in that zone.

    Daylight-saving changes as cron has them: a wall time the spring change skips does
    not come that day (croniter would move it to the change, 02:30 to 03:00), and one the
    autumn change repeats comes once, at its first occurrence (croniter gives both).
    """
    from croniter import croniter  # deferred, as in kubehatch.api.fields

    tz = ZoneInfo(zone or "UTC")
    iterator = croniter(schedule.strip(), after.astimezone(tz))
    times: list[datetime] = []
    for _ in range(count * 4 + 8):  # each change drops at most a few: never loops forever
        if len(times) == count:
            break
        moment = iterator.get_next(datetime).astimezone(tz)
        moved = not croniter.match(schedule.strip(), moment.replace(tzinfo=None))
        if not (repeated_wall_time(moment, tz) or moved):
            times.append(moment)
    return times


class CronTimes(StatusModel):
    """The next times of one cron schedule, written in its time zone."""

    schedule: str = Field(description="The schedule, as in the spec.")
    time_zone: str = Field(default="UTC", description="The zone it is read in.")
    next_times: list[datetime] = Field(
        default_factory=list,
        description="Its next times, with the zone's UTC offset (e.g. 2026-03-30T09:00:00+02:00).",
    )


def event_trigger(key: str, filter: str | None = None) -> str:
    """An event entry's name in status.lastTriggered and on its runs: event:KEY, or
    event:KEY if FILTER for a filtered one."""
    return f"event:{key}" if filter is None else f"event:{key} if {filter}"


def cron_trigger(schedule: str, zone: str | None = None) -> str:
    """A cron entry's name in status.lastTriggered and on its runs: cron:SCHEDULE, or
    cron:SCHEDULE TZ=ZONE for a zoned one."""
    return f"cron:{schedule}" if zone is None else f"cron:{schedule} TZ={zone}"


class Triggers(ApiModel):
    """What starts a run besides a manual WorkflowRun: events, cron schedules, fixed times."""

    events: list[EventKey] = Field(
        default_factory=list,
        description=(
            "Event keys (e.g. user:created, or order:* for a prefix) that start a run; "
            "filteredEvents adds a filter."
        ),
    )
    filtered_events: list[FilteredEvent] = Field(
        default_factory=list,
        max_length=MAX_EVENT_FILTERS,
        description=(
            "Event keys with a CEL filter over the event: a matching event starts a run "
            "only when its filter is true."
        ),
    )
    crons: list[CronSchedule] = Field(
        default_factory=list,
        description="Cron schedules (five fields, UTC) that start a run; zonedCrons for a zone.",
    )
    zoned_crons: list[ZonedCron] = Field(
        default_factory=list,
        max_length=MAX_ZONED_CRONS,
        description="Cron schedules read in a time zone (e.g. Europe/Paris) that start a run.",
    )
    at: list[AwareDatetime] = Field(
        default_factory=list, description="RFC 3339 times at which to start one run each."
    )
