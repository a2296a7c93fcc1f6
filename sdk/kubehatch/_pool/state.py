"""What the worker's loop keeps: its settings and each task it claimed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kubehatch._pool.claims import Outcome, Stop


@dataclass(frozen=True)
class Settings:
    pool: str
    identity: str
    """status.worker of the tasks this worker claims: its pod's name."""
    slots: int = 4
    stop_grace: float = 10.0
    """SIGTERM to SIGKILL, for a step whose task was deleted (its run cancelled)."""
    shutdown_grace: float = 25.0
    """How long running steps may go on once the worker is told to stop."""
    shutdown_kill: float = 3.0
    """SIGTERM to SIGKILL for the steps still running after shutdown_grace."""


class Steps(Protocol):
    """The step processes (:class:`kubehatch._pool.runner.Children`, or a fake)."""

    def run(self, name: str, task: Mapping[str, Any]) -> None: ...
    def signal(self, name: str, signum: int) -> None: ...
    def result(self, name: str) -> tuple[str | None, str | None]: ...
    def forget(self, name: str) -> None: ...


@dataclass
class Attempt:
    """A task this worker claimed, until it is reported (or given up)."""

    name: str
    label: str
    version: str
    """resourceVersion after the worker's last write: the next write's precondition."""
    lease: int
    timeout: int | None
    claimed: float
    renewed: float
    next_renew: float
    renewing: bool = False
    renew_sent: float = 0.0
    started: float | None = None
    deadline: float | None = None
    stop: Stop | None = None
    kill_at: float | None = None
    outcome: Outcome | None = None
    """Set when the child ended: the report to send (after a renewal in flight)."""
    reporting: bool = False
    next_report: float = 0.0
    """When to try the report (again): it is retried, the claim renewed, until it lands."""
    report_tries: int = 0
    report_error: str = ""
    """Why the last try of the report failed, for the line saying it was dropped."""
    ended: float | None = None
    ended_at: datetime | None = None
    """The wall-clock time of the end: the report's finishedAt, however late it is sent."""

    @property
    def running(self) -> bool:
        return self.ended is None
