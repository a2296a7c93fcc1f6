"""The worker's side of its steps' processes: it starts the zygote
(:mod:`kubehatch._pool.zygote`), hands it tasks and hears them end.

For each task it lays out a directory as a step pod's volumes are laid out (the run's
input, each parent's output under the file name a pod would see) plus the step's
environment, and relays the child's output to the worker's stderr, every line prefixed
with ``[<task>] `` so one attempt's lines can be picked out of a worker's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from kubehatch._pool import zygote
from kubehatch._pool.events import Console, Event, Exited, Fatal, Started, ZygoteReady
from kubehatch.api import outputs, wire
from kubehatch.api.stepenv import StepEnv, StepEnvError

LONGEST_LINE = 64 * 1024
"""A step's line longer than this is relayed in pieces (each prefixed)."""
RELAY_WAIT = 0.05
"""How long the end of a step waits for its last lines to be relayed (they are written
before it exits, so normally there is no wait at all)."""


def task_env(spec: Mapping[str, Any], directory: Path, worker: str) -> dict[str, str]:
    """The step's environment: the task's KUBEHATCH_* variables (nothing else: a task
    cannot set the child's PATH or LD_PRELOAD), with the directories of its files, and the
    worker's code when the task names none (as the image's variable does in a step pod)."""
    env = {
        str(k): str(v)
        for k, v in wire.mapping(spec.get("env")).items()
        if wire.is_reserved_env(str(k))
    }
    try:
        step = StepEnv.from_env({wire.ENV_WORKER: worker, **env})
    except StepEnvError:
        return env  # the child fails on it, saying what is missing
    where = PurePosixPath(directory)
    here = replace(step, input_dir=where / "input", parents_dir=where / "parents")
    return {**env, **here.to_env()}


def lay_out(spec: Mapping[str, Any], directory: Path, worker: str) -> None:
    """Write what a step pod would find mounted, and the environment, into ``directory``."""
    (directory / "input").mkdir(parents=True)
    (directory / "parents").mkdir()
    (directory / "input" / wire.INPUT_KEY).write_text(str(spec.get("input") or "{}"))
    for parent, text in wire.mapping(spec.get("parents")).items():
        name = outputs.head_files(str(parent))[wire.OUTPUT_KEY]
        (directory / "parents" / name).write_text(str(text))
    env = task_env(spec, directory, worker)
    (directory / zygote.ENV_FILE).write_text(json.dumps(env))


def relay(prefix: bytes, fd: int, write: Callable[[bytes], None]) -> None:
    """Copy lines from ``fd`` to ``write`` with ``prefix``, until its end."""
    pending = b""
    with open(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(LONGEST_LINE):
            *lines, pending = (pending + chunk).split(b"\n")
            while len(pending) > LONGEST_LINE:
                lines.append(pending[:LONGEST_LINE])
                pending = pending[LONGEST_LINE:]
            if lines:
                write(b"".join(prefix + line + b"\n" for line in lines))
    if pending:
        write(prefix + pending + b"\n")


class Children:
    """The zygote and the steps it runs, as seen from the worker's loop.

    ``start``'s ``post`` receives ZygoteReady (or Fatal, when the worker's code does not
    load), Started and Exited; the other methods are called from the loop's thread only.
    """

    def __init__(self, worker: str, console: Console) -> None:
        self.worker = worker
        self.post: Callable[[Event], None] = lambda _: None
        self.console = console
        self.base = Path(tempfile.mkdtemp(prefix="kubehatch-worker-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.relays: dict[str, threading.Thread] = {}
        self.closing = False

    def start(self, post: Callable[[Event], None]) -> None:
        """Start the zygote; ZygoteReady is posted once the worker's code is loaded."""
        self.post = post
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = "from kubehatch._pool.zygote import main; main()"
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, str(theirs.fileno()), self.worker],
                pass_fds=[theirs.fileno()],
                start_new_session=True,  # Ctrl-C reaches the worker only; it stops the steps
            )
        self.sock = ours
        threading.Thread(target=self._listen, name="zygote", daemon=True).start()

    def _listen(self) -> None:
        assert self.sock is not None
        while True:
            try:
                message, _ = zygote.receive(self.sock)
            except OSError:
                message = None
            if message is None:
                if not self.closing:
                    self.post(Fatal("the process that starts the steps ended unexpectedly"))
                return
            op = message.get("op")
            if op == "ready":
                self.post(ZygoteReady(float(message.get("ms", 0))))
            elif op == "failed":
                self.post(Fatal(f"cannot load the worker {self.worker!r}: {message['error']}"))
            elif op == "started":
                self.post(Started(str(message["name"]), int(message["pid"])))
            elif op == "exited":
                self.post(Exited(str(message["name"]), int(message["code"])))

    def directory(self, name: str) -> Path:
        return self.base / name

    def run(self, name: str, task: Mapping[str, Any]) -> None:
        """Lay the task out and have the zygote fork its child (Started comes later)."""
        assert self.sock is not None
        directory = self.directory(name)
        shutil.rmtree(directory, ignore_errors=True)  # a task claimed again by this worker
        lay_out(wire.mapping(task.get("spec")), directory, self.worker)
        read, write = os.pipe()
        try:
            zygote.send(self.sock, {"op": "run", "name": name, "dir": str(directory)}, [write])
        finally:
            os.close(write)
        prefix = f"[{name}] ".encode()
        thread = threading.Thread(
            target=relay, args=(prefix, read, self.console.write), name=name, daemon=True
        )
        thread.start()
        self.relays[name] = thread

    def signal(self, name: str, signum: int) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                zygote.send(self.sock, {"op": "signal", "name": name, "signal": int(signum)})

    def result(self, name: str) -> tuple[str | None, str | None]:
        """(output JSON, failure message) the ended child handed back, if any."""
        relay_thread = self.relays.pop(name, None)
        if relay_thread is not None:
            relay_thread.join(RELAY_WAIT)

        def read(file: str) -> str | None:
            try:
                return (self.directory(name) / file).read_text()
            except OSError:
                return None

        return read(zygote.OUTPUT_FILE), read(zygote.MESSAGE_FILE)

    def forget(self, name: str) -> None:
        shutil.rmtree(self.directory(name), ignore_errors=True)

    def close(self) -> None:
        """Stop the zygote (which SIGKILLs the steps still running) and clean up."""
        self.closing = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        if self.process is not None:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)
