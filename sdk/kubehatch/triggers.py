"""Triggers, passed as ``on=``: events, cron schedules and fixed times that start runs.

Combine several in a list: ``on=[Event("user:created"), Cron("0 * * * *")]``. Each
trigger remembers where it was written, so a bad cron schedule is reported at its own
line. Values are checked when the workflow is registered, not here, so that every
problem of a worker is reported at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from kubehatch._origin import caller_origin


class Trigger:
    """Base of all triggers: the events, crons and times it contributes."""

    def __init__(
        self,
        *,
        events: Iterable[str] = (),
        crons: Iterable[str] = (),
        at: Iterable[datetime] = (),
    ) -> None:
        self.events: tuple[str, ...] = tuple(events)
        self.crons: tuple[str, ...] = tuple(crons)
        self.at: tuple[datetime, ...] = tuple(at)
        self.origin = caller_origin()

    def __repr__(self) -> str:
        values = [*self.events, *self.crons, *(time.isoformat() for time in self.at)]
        return f"{type(self).__name__}({', '.join(repr(value) for value in values)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trigger):
            return NotImplemented
        return (self.events, self.crons, self.at) == (other.events, other.crons, other.at)

    def __hash__(self) -> int:
        return hash((self.events, self.crons, self.at))

    @property
    def empty(self) -> bool:
        """Whether the trigger contributes nothing (``Events()`` with no keys)."""
        return not (self.events or self.crons or self.at)


class Event(Trigger):
    """Start a run when an event with this key (e.g. "user:created") arrives."""

    def __init__(self, key: str) -> None:
        super().__init__(events=(key,))


class Events(Trigger):
    """Start a run when an event with any of these keys arrives."""

    def __init__(self, *keys: str) -> None:
        super().__init__(events=keys)


class Cron(Trigger):
    """Start a run on a five-field cron schedule (UTC), e.g. "*/5 * * * *"."""

    def __init__(self, schedule: str) -> None:
        super().__init__(crons=(schedule,))


class Crons(Trigger):
    """Start a run on each of several cron schedules."""

    def __init__(self, *schedules: str) -> None:
        super().__init__(crons=schedules)


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
