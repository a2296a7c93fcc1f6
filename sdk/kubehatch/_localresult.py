"""What a local run (:mod:`kubehatch._localrun`) gives back: its steps' phases, messages
and outputs, and the events it went through."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kubehatch._serialization import JSONValue


@dataclass(frozen=True)
class StepEvent:
    """A step changed phase (what ``on_event`` hears, and ``kubehatch run --local`` prints)."""

    step: str
    """The step's name; ``<child run>/<step>`` for a step of a child run, ``<step>[<i>]``
    for item ``i`` of a forEach step."""
    phase: str
    """Running, Succeeded, Retrying, Failed, TimedOut, Cancelled or Skipped."""
    attempt: int
    at: datetime
    message: str = ""
    output: JSONValue = None
    """The step's output, on Succeeded."""


@dataclass
class LocalRun:
    """The result of a local run."""

    workflow: str
    outputs: dict[str, JSONValue] = field(default_factory=dict)
    """Each step's output as the engine would store it (JSON data)."""
    attempts: dict[str, int] = field(default_factory=dict)
    """Attempts each step took (1 when it succeeded the first time)."""
    phases: dict[str, str] = field(default_factory=dict)
    """Each step's final phase: Succeeded, Failed, TimedOut, Cancelled or Skipped."""
    messages: dict[str, str] = field(default_factory=dict)
    """Why each step that did not succeed ended as it did, as the run's status on a
    cluster says it ("not run: parent a failed", "skipped: skipIf '...' was true",
    "failed: ValueError: ..."; a pod's message also has the traceback's tail); and what
    a few that succeeded say ("approved by local", "forEach gave no items")."""
    errors: dict[str, BaseException] = field(default_factory=dict)
    """The last error of each step that failed."""
    children: dict[str, list[LocalRun]] = field(default_factory=dict)
    """The child runs of each step that spawned some, in order."""
    events: list[StepEvent] = field(default_factory=list)
    phase: str = "Running"
    """Succeeded, Failed, TimedOut or Cancelled once finished."""
    message: str = ""
    """Why the run did not succeed."""

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"
