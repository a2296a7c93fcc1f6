"""The warm parent of a worker's steps: it imports the worker's code once, then forks one
child per step, which runs it through the step pod's own code (:mod:`kubehatch._steprunner`).

A process of its own, without threads: forking the worker itself would fork its watch
and API threads mid-call (a lock held by one of them stays held in the child forever),
and a small process forks faster than one that also holds the kubernetes client. The
worker talks to it over a SOCK_SEQPACKET socket: it sends ``run`` (with the write end of
the pipe the child's stdout and stderr go to) and ``signal``; this process answers
``started`` and ``exited``, since only the parent of the children can wait for them.
The child reads what the worker wrote into the task's directory and hands its output
and failure message back in files there. Each child leads a session of its own and is
signalled as a group, so the processes a step starts end with it, as in a step pod.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from kubehatch import _steprunner
from kubehatch.api import wire
from kubehatch.api.stepenv import StepEnv
from kubehatch.api.wire import EXIT_FAILED
from kubehatch.api.workertask import MAX_OUTPUT_BYTES
from kubehatch.errors import OutputTooLargeError, WorkerLoadError

ENV_FILE = "env.json"
OUTPUT_FILE = "output.json"
MESSAGE_FILE = "message.txt"
MAX_MESSAGE = 64 * 1024
"""The largest message on the socket (they are small JSON objects)."""
PRELOAD = ("traceback", "asyncio", "random")
"""Loaded here once, so no step pays for them: what the step runner loads only when needed
(traceback for a failure, asyncio for an async step, random for retries' jitter)."""
MAX_SPARES_LOST = 3
"""Spares that die before they get a task (their warm-up fails) before none is made."""
POOL_OUTPUT_FIX = "return a summary, or run this step in a Job of its own: pool: '' on the step"


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and the fds sent with it; (None, []) at the end of the stream."""
    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1, socket.MSG_CMSG_CLOEXEC)
    return (json.loads(data) if data else None), list(fds)


def main(argv: list[str] | None = None) -> None:
    """``python -c '...zygote import main; main()' FD WORKER``: load, then serve FD."""
    fd, reference = (argv or sys.argv[1:])[:2]
    sock = socket.socket(fileno=int(fd))
    began = time.monotonic()
    gc.disable()  # loading leaves next to no garbage; what it made is frozen below
    try:
        import importlib

        for module in PRELOAD:
            importlib.import_module(module)
        from kubehatch._loader import load_worker

        load_worker(reference)
    except BaseException as error:
        what = str(error) if isinstance(error, WorkerLoadError) else traceback.format_exc()
        send(sock, {"op": "failed", "error": what.strip()})
        sys.exit(EXIT_FAILED)
    finally:
        gc.freeze()  # out of every child's collections, and its pages stay shared
        gc.enable()
    send(sock, {"op": "ready", "ms": (time.monotonic() - began) * 1000})
    _Zygote(sock).serve()


class _Zygote:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pids: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        os.set_blocking(self.wake_read, False)
        self.selector = selectors.DefaultSelector()
        self.spare: tuple[int, socket.socket] | None = None
        self.spares_lost = 0

    def serve(self) -> None:
        """Until the worker closes the socket (then its children go with it)."""
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when steps stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.set_wakeup_fd(self.wake_write)
        self.selector.register(self.sock, selectors.EVENT_READ)
        self.selector.register(self.wake_read, selectors.EVENT_READ)
        self._fork_spare()
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.sock and not self._command():
                    self._stop()
                    return
            with contextlib.suppress(BlockingIOError):
                while os.read(self.wake_read, 512):
                    pass
            self._reap()

    def _command(self) -> bool:
        message, fds = receive(self.sock)
        if message is None:
            return False
        if message.get("op") == "run":
            name, directory = str(message["name"]), str(message["dir"])
            pid = self._hand_over(directory, fds)
            for fd in fds:
                os.close(fd)  # else the worker never sees the end of the child's output
            if pid is None:
                send(self.sock, {"op": "exited", "name": name, "code": EXIT_FAILED})
            else:
                self.pids[name], self.names[pid] = pid, name
                send(self.sock, {"op": "started", "name": name, "pid": pid})
            self._fork_spare()  # after answering: the next step finds it ready
        elif message.get("op") == "signal":
            pid = self.pids.get(str(message["name"]))
            if pid is not None:  # not reaped yet, so the pid is still this child's
                signal_step(pid, int(message["signal"]))
        return True

    def _hand_over(self, directory: str, fds: list[int]) -> int | None:
        """The step's process: the spare, told where its task is, else a new fork."""
        if self.spare is not None:
            pid, sock = self.spare
            self.spare = None
            with sock:
                try:
                    send(sock, {"dir": directory}, fds)
                    return pid
                except OSError:
                    pass  # it died: it is reaped as a lost spare
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as err:
            with contextlib.suppress(OSError):
                Path(directory, MESSAGE_FILE).write_text(
                    f"the worker could not start a process for the step: {err}"
                )
            return None
        if pid == 0:
            self._leave()
            _become_step(directory, fds[0])  # never returns
        return pid

    def _fork_spare(self) -> None:
        """Fork the next step's process ahead of time, and let it warm up: the fork and
        the first touches of memory it shares with this process cost more than the rest
        of starting a step, and are paid while nothing waits for them."""
        if self.spare is not None or self.spares_lost >= MAX_SPARES_LOST:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return
        if pid == 0:
            ours.close()
            self._leave()
            _wait_as_spare(theirs)  # never returns
        theirs.close()
        self.spare = (pid, ours)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = self._wait()
            except ChildProcessError:
                return
            if pid == 0:
                return
            name = self.names.pop(pid, None)
            if name is not None:
                self.pids.pop(name, None)
                code = os.waitstatus_to_exitcode(status)
                send(self.sock, {"op": "exited", "name": name, "code": code})
            elif self.spare is not None and self.spare[0] == pid:
                self.spare[1].close()
                self.spare = None
                self.spares_lost += 1
                self._fork_spare()

    def _wait(self) -> tuple[int, int]:
        """Reap a child that ended ((0, 0): none did). A step's group is SIGKILLed first,
        while its zombie keeps the group's id from reuse, so what a step started ends with
        it, as in a step pod (without os.waitid, macOS before Python 3.13: just after)."""
        if not hasattr(os, "waitid"):
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid in self.names:
                signal_step(pid, signal.SIGKILL, group_only=True)
            return pid, status
        ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if ended is None:
            return 0, 0
        if ended.si_pid in self.names:
            signal_step(ended.si_pid, signal.SIGKILL, group_only=True)
        return os.waitpid(ended.si_pid, 0)

    def _stop(self) -> None:
        if self.spare is not None:
            self.spare[1].close()  # it sees the end and exits
        for pid in self.names:
            signal_step(pid, signal.SIGKILL)

    def _leave(self) -> None:
        """In a forked child: lead a session of its own, so that signalling its group
        reaches every process the step starts; drop the zygote's plumbing and signals."""
        os.setsid()
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.selector.close()
        self.sock.close()
        os.close(self.wake_read)
        os.close(self.wake_write)
        if self.spare is not None:
            self.spare[1].close()


def signal_step(pid: int, signum: int, group_only: bool = False) -> None:
    """Signal a step's process group: the step and every process it started (a child
    just forked, before its setsid, has no group yet and gets it alone)."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        if not group_only:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
    except PermissionError:
        pass  # only processes of another user are left (a setuid program's)


def _wait_as_spare(sock: socket.socket) -> None:
    """The spare: warm up, wait for a task (or the zygote's end), then run it."""
    try:
        _warm_up()
        message, fds = receive(sock)
    except BaseException:
        os._exit(EXIT_FAILED)
    sock.close()
    if message is None:
        os._exit(0)
    _become_step(str(message["dir"]), fds[0])


def _warm_up() -> None:
    """What every step does first, done once in the spare on made-up data, so that the
    step pays none of the copy-on-write faults and first-time costs of it (a thread is
    the largest: a sync step runs in one)."""
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    with tempfile.TemporaryDirectory(prefix="kubehatch-warm-") as tmp:
        directory = Path(tmp)
        (directory / wire.INPUT_KEY).write_text(json.dumps({"warm": [1, "x", None]}))
        made_up = StepEnv("ns", "wf", "r", "u", "s", "a:s", 1, ("p",), "o", "m:w", 60)
        where = PurePosixPath(tmp)
        env = replace(made_up, input_dir=where, parents_dir=where).to_env()
        _steprunner.build_context(StepEnv.from_env(env), threading.Event())
        json.loads((directory / wire.INPUT_KEY).read_text())


def _become_step(directory: str, output: int) -> None:
    """In the step's process: its stdout and stderr to the worker, run it, exit."""
    code = EXIT_FAILED
    try:
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        for stream in (sys.stdout, sys.stderr):  # lines reach the worker as written
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(line_buffering=True)
        code = run_step(Path(directory))
        atexit._run_exitfuncs()  # as an interpreter exit would (the user's handlers)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def run_step(directory: Path) -> int:
    """Run the step described in ``directory`` as a step pod would; returns its exit code.

    The output and a failure message are handed back in files of ``directory``; an output
    over the pool's limit (it travels in the task's status) fails the step for good.
    """
    env: dict[str, str] = json.loads((directory / ENV_FILE).read_text())
    os.environ.update(env)

    def store(step: StepEnv, text: str, *, spawn: bool = False) -> None:
        size = len(text.encode())
        if size > MAX_OUTPUT_BYTES:
            raise OutputTooLargeError(
                f"output of step {step.step!r} is {size} bytes of JSON, more than a step on a "
                f"WorkerPool may return ({MAX_OUTPUT_BYTES} bytes, {MAX_OUTPUT_BYTES // 1024} "
                f"KiB): {POOL_OUTPUT_FIX}",
                size=size,
                limit=MAX_OUTPUT_BYTES,
            )
        (directory / OUTPUT_FILE).write_text(text)

    def report(message: str) -> None:
        (directory / MESSAGE_FILE).write_text(message)

    return _steprunner.main(env, store=store, report=report)
