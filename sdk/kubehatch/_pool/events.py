"""What the worker's threads tell its loop, and the one place its lines are written.

The loop owns all of the worker's state; the watch, the API calls and the step children
only post these events to it, so no state is shared between threads.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO


@dataclass(frozen=True)
class Listed:
    """A fresh listing of the pool's tasks (at start, and after the watch expired)."""

    tasks: list[dict[str, Any]]


@dataclass(frozen=True)
class Watched:
    kind: str
    """ADDED, MODIFIED or DELETED."""
    task: dict[str, Any]


@dataclass(frozen=True)
class Fatal:
    """The worker cannot go on (its code does not load, it may not list tasks)."""

    message: str


@dataclass(frozen=True)
class Done:
    """An API call of the loop's has returned: ``result``, or ``error`` if it raised."""

    name: str
    call: str
    """claim, renew or report."""
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class ZygoteReady:
    load_ms: float


@dataclass(frozen=True)
class Started:
    name: str
    pid: int


@dataclass(frozen=True)
class Exited:
    name: str
    code: int
    """As os.waitstatus_to_exitcode gives it: negative when killed by that signal."""


@dataclass(frozen=True)
class Shutdown:
    """SIGTERM or Ctrl-C: stop claiming and finish; ``now`` skips the grace period."""

    now: bool = False


Event = Listed | Watched | Fatal | Done | ZygoteReady | Started | Exited | Shutdown


@dataclass
class Console:
    """The worker's stderr: progress lines and its steps' prefixed output, never mixed
    within a line (several threads write)."""

    stream: BinaryIO = field(default_factory=lambda: sys.stderr.buffer)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, data: bytes) -> None:
        with self.lock:
            self.stream.write(data)
            self.stream.flush()

    def say(self, line: str) -> None:
        self.write(f"kubehatch worker: {line}\n".encode(errors="replace"))
