"""Triggers, passed as ``on=``: events, cron schedules and fixed times that start runs.

Combine several in a list: ``on=[Event("user:created"), Cron("0 * * * *")]``.
``Event(key, filter="event.data.amount > 100")`` starts a run only for the events its CEL
filter accepts (``spec.triggers.filteredEvents``); ``Cron(schedule, timezone="Europe/Paris")``
reads the schedule in that zone (``spec.triggers.zonedCrons``, the CronJob's timeZone). Each
trigger remembers where it was written, so a bad cron schedule is reported at its own
line. Values are checked when the workflow is registered, not here, so that every
problem of a worker is reported at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo

from kubehatch._origin import caller_origin


class Trigger:
    """Base of all triggers: the events, crons and times it contributes."""

    def __init__(
        self,
        *,
        events: Iterable[str] = (),
        crons: Iterable[str] = (),
        at: Iterable[datetime] = (),
        filtered_events: Iterable[tuple[str, str]] = (),
        zoned_crons: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.events: tuple[str, ...] = tuple(events)
        self.crons: tuple[str, ...] = tuple(crons)
        self.at: tuple[datetime, ...] = tuple(at)
        self.filtered_events: tuple[tuple[str, str], ...] = tuple(filtered_events)
        """(key, CEL filter) pairs."""
        self.zoned_crons: tuple[tuple[str, str], ...] = tuple(zoned_crons)
        """(schedule, time zone) pairs."""
        self.origin = caller_origin()

    def __repr__(self) -> str:
        values = [repr(v) for v in (*self.events, *self.crons)]
        values += [repr(time.isoformat()) for time in self.at]
        values += [f"{key!r}, filter={text!r}" for key, text in self.filtered_events]
        values += [f"{cron!r}, timezone={zone!r}" for cron, zone in self.zoned_crons]
        return f"{type(self).__name__}({', '.join(values)})"

    def _values(self) -> tuple[object, ...]:
        return (self.events, self.crons, self.at, self.filtered_events, self.zoned_crons)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trigger):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    @property
    def empty(self) -> bool:
        """Whether the trigger contributes nothing (``Events()`` with no keys)."""
        return not any(self._values())


def _zone(timezone: str | tzinfo | None) -> str | None:
    """A zone's name (a ``ZoneInfo`` gives its key); checked at registration, not here."""
    if timezone is None or isinstance(timezone, str):
        return timezone
    return str(getattr(timezone, "key", None) or timezone)


class Event(Trigger):
    """Start a run when an event with this key (e.g. "user:created") arrives.

    ``filter``, a CEL expression over ``event.data`` (the payload), ``event.metadata``
    and ``event.key``, starts one only when it is true: ``filter="event.data.amount > 100"``.
    """

    def __init__(self, key: str, *, filter: str | None = None) -> None:
        if filter is None:
            super().__init__(events=(key,))
        else:
            super().__init__(filtered_events=((key, filter),))


class Events(Trigger):
    """Start a run when an event with any of these keys arrives (each through ``filter``,
    if given)."""

    def __init__(self, *keys: str, filter: str | None = None) -> None:
        if filter is None:
            super().__init__(events=keys)
        else:
            super().__init__(filtered_events=((key, filter) for key in keys))


class Cron(Trigger):
    """Start a run on a five-field cron schedule, e.g. "*/5 * * * *": in UTC, or in
    ``timezone`` (an IANA name such as "Europe/Paris", or a ``ZoneInfo``), daylight-saving
    changes included."""

    def __init__(self, schedule: str, *, timezone: str | tzinfo | None = None) -> None:
        zone = _zone(timezone)
        if zone is None:
            super().__init__(crons=(schedule,))
        else:
            super().__init__(zoned_crons=((schedule, zone),))


class Crons(Trigger):
    """Start a run on each of several cron schedules (all in ``timezone``, if given)."""

    def __init__(self, *schedules: str, timezone: str | tzinfo | None = None) -> None:
        zone = _zone(timezone)
        if zone is None:
            super().__init__(crons=schedules)
        else:
            super().__init__(zoned_crons=((schedule, zone) for schedule in schedules))


class At(Trigger):
    """Start one run at each of these (timezone-aware) times; for one-off workflows."""

    def __init__(self, *times: datetime) -> None:
        super().__init__(at=times)


def as_trigger_list(on: Trigger | Sequence[Trigger] | None) -> list[object]:
    """``on=`` normalised to a list (one trigger, several, or none).

    Anything that is not a trigger is kept as one item for registration to report,
    rather than iterated (a string would otherwise become single characters).
    """
    if on is None:
        return []
    if isinstance(on, Trigger) or not isinstance(on, Sequence) or isinstance(on, str | bytes):
        return [on]
    return list(on)
