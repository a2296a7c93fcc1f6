"""The operator as a separate process, so that tests can SIGKILL and restart it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class OperatorProcess:
    def __init__(
        self, namespace_pattern: str, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.namespace_pattern = namespace_pattern
        self.log_path = log_path
        self.env = env or {}
        """Extra environment of the operator (on top of this process's)."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubehatch_operator", "--standalone",
             "--namespace", self.namespace_pattern],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )  # fmt: skip
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last writes, as when a node dies."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def log_lines(self, fragment: str) -> list[str]:
        """The operator log's lines that contain ``fragment`` (errors, tracebacks)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if fragment in line]


class Chaos(threading.Thread):
    """SIGKILLs the operator at random moments and restarts it at once.

    Each kill comes ``interval`` (a random number of seconds between the two bounds)
    after the previous restart, so the operator is killed anywhere: while it lists what
    exists after a start, between creating a Job and recording it, mid status write.
    """

    def __init__(
        self,
        operator: OperatorProcess,
        interval: tuple[float, float] = (2.0, 5.0),
        seed: int | None = None,
    ) -> None:
        super().__init__(daemon=True, name="operator-chaos")
        self.operator = operator
        self.interval = interval
        self.seed = random.randrange(2**32) if seed is None else seed
        self.random = random.Random(self.seed)
        self.kills: list[float] = []
        """When (monotonic clock) each SIGKILL was sent."""
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.random.uniform(*self.interval)):
            self.operator.kill()
            self.kills.append(time.monotonic())
            self.operator.start()

    def stop(self) -> None:
        """No more kills; the operator is left running."""
        self._halt.set()
        self.join(30)
        if not self.operator.alive():
            self.operator.start()
