"""The operator as a separate process, so that tests can SIGKILL and restart it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class OperatorProcess:
    def __init__(self, namespace_pattern: str, log_path: Path) -> None:
        self.namespace_pattern = namespace_pattern
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubehatch_operator", "--standalone",
             "--namespace", self.namespace_pattern],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

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
