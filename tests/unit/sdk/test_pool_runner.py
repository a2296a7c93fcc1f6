"""A pool worker's steps, in real processes: the zygote loads a tiny worker module from a
temporary directory once, and each step runs in a child of its own through the step pod's
code. No cluster: the tasks are dicts, as the API would hand them over.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubehatch._pool import zygote
from kubehatch._pool.events import Console, Event, Exited, Fatal, Started, ZygoteReady
from kubehatch._pool.runner import Children, lay_out, relay, task_env
from kubehatch.api import wire
from kubehatch.api.stepenv import StepEnv
from kubehatch.api.workertask import MAX_OUTPUT_BYTES

WORKER = """
import os, signal, subprocess, sys, time
from kubehatch import Context, Fn, PermanentError, Worker, WorkflowJob

def greet(ctx: Context) -> dict:
    print("hello from greet")
    print("and from its stderr", file=sys.stderr)
    return {
        "hi": ctx.workflow_input()["name"],
        "parent": ctx.step_output("first"),
        "run": os.environ["KUBEHATCH_RUN"],
        "injected": os.environ.get("LD_PRELOAD"),
    }

def broken(ctx: Context) -> None:
    raise ValueError("no such user")

def hopeless(ctx: Context) -> None:
    raise PermanentError("input can never work")

def huge(ctx: Context) -> str:
    return "x" * (300 * 1024)

def slow(ctx: Context) -> dict:
    time.sleep(30)
    return {}

def waits(ctx: Context) -> dict:
    print("waiting for the cancellation", flush=True)
    seen = ctx.wait_for_cancel(30)
    print(f"saw the cancellation: {seen}", flush=True)
    return {"stopped": seen}

def crash(ctx: Context) -> None:
    os.kill(os.getpid(), signal.SIGKILL)

def quits(ctx: Context) -> None:
    ctx.cancel()
    ctx.raise_if_cancelled()

def stamp(ctx: Context) -> dict:
    return {"t": time.monotonic(), "pid": os.getpid(), "parent": os.getppid()}

def spawns(ctx: Context) -> dict:
    how = ctx.workflow_input()
    deaf = "trap '' TERM; " if how.get("deaf") else ""
    sleeper = subprocess.Popen(["sh", "-c", deaf + "exec sleep 60"])
    print(f"started {sleeper.pid}", flush=True)
    if how.get("until"):  # the test lets it return
        for _ in range(3000):
            if os.path.exists(how["until"]):
                break
            time.sleep(0.01)
    else:
        ctx.wait_for_cancel(30)
    return {}

worker = Worker("pooltest", image="i:1")
for f in (greet, broken, hopeless, huge, slow, waits, crash, quits, stamp, spawns):
    worker.register_workflow(WorkflowJob(name=f.__name__, steps=[Fn(f).set_name(f.__name__)]))
"""


class Running:
    """A started Children with its events and its console output."""

    def __init__(self, children: Children, events: queue.Queue[Event], out: io.BytesIO) -> None:
        self.children = children
        self.events = events
        self.out = out
        self.count = 0

    def next(self, timeout: float = 20) -> Event:
        return self.events.get(timeout=timeout)

    def start(self, action: str, timeout: int | None = None, **spec: Any) -> str:
        self.count += 1
        name = f"{action}-{self.count}"
        step = StepEnv("ns", "wf", "r1", "u", action, f"{action}:{action}", 1, ("first",), "o")
        env = {**step.to_env(), "LD_PRELOAD": "/evil.so"}
        if timeout is not None:
            env["KUBEHATCH_TIMEOUT_SECONDS"] = str(timeout)
        body = {"input": '{"name": "ada"}', "parents": {"first": '{"n": 1}'}, **spec}
        self.children.run(name, {"metadata": {"name": name}, "spec": {"env": env, **body}})
        started = self.next()
        assert isinstance(started, Started) and started.name == name
        return name

    def end(self, name: str, timeout: float = 20) -> tuple[int, str | None, str | None]:
        exited = self.next(timeout)
        assert isinstance(exited, Exited) and exited.name == name, exited
        output, message = self.children.result(name)
        return exited.code, output, message

    def run(self, action: str, **options: Any) -> tuple[int, str | None, str | None]:
        return self.end(self.start(action, **options))

    def wait_for_line(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out.getvalue():
            assert time.monotonic() < deadline, self.out.getvalue().decode()
            time.sleep(0.01)

    def spawned(self, name: str) -> int:
        """The pid of the process the ``spawns`` step ``name`` started."""
        self.wait_for_line(f"[{name}] started ")
        found = re.search(rb"\[" + name.encode() + rb"\] started (\d+)", self.out.getvalue())
        assert found is not None
        pid = int(found.group(1))
        assert not gone(pid)
        return pid


def gone(pid: int) -> bool:
    """Whether ``pid`` ended: no such process, or a zombie (an orphan init has not reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc (macOS)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_until_gone(pid: int, timeout: float = 20) -> None:
    """Poll, bounded: a functional check that the process ended, not a measure of when."""
    deadline = time.monotonic() + timeout
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} outlived its step"
        time.sleep(0.01)


def start_children(
    module_dir: Path, reference: str, out: io.BytesIO | None = None
) -> tuple[Children, queue.Queue[Event]]:
    path = os.pathsep.join([str(module_dir), os.environ.get("PYTHONPATH", "")])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", path)  # the zygote finds the module as a pod's would
        children = Children(reference, Console(out or io.BytesIO()))
        events: queue.Queue[Event] = queue.Queue()
        children.start(events.put)
    return children, events


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    module_dir = tmp_path_factory.mktemp("poolworker")
    (module_dir / "poolworker.py").write_text(WORKER)
    out = io.BytesIO()
    children, events = start_children(module_dir, "poolworker:worker", out)
    ready = events.get(timeout=60)
    assert isinstance(ready, ZygoteReady), ready
    yield Running(children, events, out)
    children.close()
    assert not children.base.exists()


def test_a_step_runs_with_its_input_and_parents_and_hands_back_its_output(
    running: Running,
) -> None:
    name = running.start("greet")
    code, output, message = running.end(name)
    assert (code, message) == (0, None)
    assert json.loads(output or "") == {
        "hi": "ada",
        "parent": {"n": 1},
        "run": "r1",
        "injected": None,  # only the task's KUBEHATCH_* variables reach the step
    }
    running.wait_for_line(f"[{name}] step greet succeeded")
    lines = running.out.getvalue().decode().splitlines()
    assert f"[{name}] hello from greet" in lines
    assert f"[{name}] and from its stderr" in lines
    running.children.forget(name)
    assert not running.children.directory(name).exists()


@pytest.mark.parametrize(
    ("action", "code", "text"),
    [
        ("broken", wire.EXIT_FAILED, "ValueError: no such user"),
        ("hopeless", wire.EXIT_PERMANENT, "PermanentError: input can never work"),
        ("quits", wire.EXIT_SELF_CANCELLED, "cancelled by the step itself (ctx.cancel())"),
    ],
)
def test_failures_come_back_with_the_step_pods_exit_code_and_message(
    running: Running, action: str, code: int, text: str
) -> None:
    ended, output, message = running.run(action)
    assert (ended, output) == (code, None)
    assert message is not None and text in message


def test_an_output_too_large_for_the_tasks_status_fails_the_step_for_good(
    running: Running,
) -> None:
    code, output, message = running.run("huge")
    assert (code, output) == (wire.EXIT_PERMANENT, None)
    assert message is not None
    size = len(json.dumps("x" * 300 * 1024))
    assert f"output of step 'huge' is {size} bytes of JSON" in message
    assert f"({MAX_OUTPUT_BYTES} bytes, 256 KiB)" in message
    assert "return a summary, or run this step in a Job of its own: pool: '' on the step" in message


def test_a_step_past_its_timeout_is_stopped_by_its_own_alarm(running: Running) -> None:
    code, output, message = running.run("slow", timeout=1)
    assert (code, output) == (wire.EXIT_TIMED_OUT, None)
    assert message == "timed out: the step ran longer than its timeout of 1s"


def test_sigterm_cancels_the_step_which_sees_it_in_ctx_cancelled(running: Running) -> None:
    name = running.start("waits")
    running.wait_for_line(f"[{name}] waiting for the cancellation")
    running.children.signal(name, signal.SIGTERM)
    code, output, message = running.end(name)
    assert (code, output) == (wire.EXIT_CANCELLED, None)
    assert message == "cancelled: the step received SIGTERM"
    running.wait_for_line(f"[{name}] saw the cancellation: True")


@pytest.mark.parametrize(
    ("signum", "deaf", "exit_code"),
    [
        (signal.SIGTERM, False, wire.EXIT_CANCELLED),  # cancelled: the group gets SIGTERM
        (signal.SIGTERM, True, wire.EXIT_CANCELLED),  # one deaf to it ends with the step
        (signal.SIGKILL, True, -signal.SIGKILL),  # lost, or past its timeout: killed
        (None, True, 0),  # left behind by a step that returned
    ],
    ids=["cancelled", "deaf-to-sigterm", "killed", "left-behind"],
)
def test_the_processes_a_step_starts_end_with_it(
    running: Running, tmp_path: Path, signum: int | None, deaf: bool, exit_code: int
) -> None:
    until = None if signum else str(tmp_path / "return")
    name = running.start("spawns", input=json.dumps({"until": until, "deaf": deaf}))
    sleeper = running.spawned(name)
    if signum is not None:
        running.children.signal(name, signum)
    else:
        Path(str(until)).touch()
    code, _, _ = running.end(name)
    assert code == exit_code
    wait_until_gone(sleeper)


def test_closing_the_children_kills_what_their_steps_started(tmp_path: Path) -> None:
    (tmp_path / "spawner.py").write_text(WORKER)
    out = io.BytesIO()
    children, events = start_children(tmp_path, "spawner:worker", out)
    try:
        assert isinstance(events.get(timeout=60), ZygoteReady)
        name = Running(children, events, out).start("spawns", input="{}")
        sleeper = Running(children, events, out).spawned(name)
    finally:
        children.close()
    wait_until_gone(sleeper)


def test_a_crashing_step_takes_only_its_own_process_with_it(running: Running) -> None:
    code, _, _ = running.run("crash")
    assert code == -signal.SIGKILL
    code, output, _ = running.run("stamp")  # the worker goes on
    assert code == 0 and output is not None


def test_each_step_runs_in_a_process_of_its_own_with_the_code_already_loaded(
    running: Running,
) -> None:
    """The worker's code is imported once, before any step: each step's process is forked
    from it (a crash boundary), with nothing to import. How fast that is, the bench says;
    the hand-over to the step's code is printed here, not asserted."""
    pids, parents, latencies = set(), set(), []
    for _ in range(3):
        handed = time.monotonic()
        code, output, _ = running.run("stamp")
        assert code == 0
        stamped = json.loads(output or "")
        pids.add(stamped["pid"])
        parents.add(stamped["parent"])
        latencies.append(round((stamped["t"] - handed) * 1000, 1))
    assert len(pids) == 3 and os.getpid() not in pids
    # All forked by the one process that loaded the code (not by the test: not its pid).
    assert len(parents) == 1 and os.getpid() not in parents
    print(f"hand-over to the step's code (ms): {latencies}")


def test_a_worker_whose_code_does_not_load_is_fatal(tmp_path: Path) -> None:
    (tmp_path / "badworker.py").write_text("raise RuntimeError('broken at import')\n")
    for reference, text in [
        ("nosuchmodule:worker", "cannot import 'nosuchmodule'"),
        ("badworker:worker", "RuntimeError: broken at import"),
    ]:
        children, events = start_children(tmp_path, reference)
        try:
            fatal = events.get(timeout=60)
            assert isinstance(fatal, Fatal), fatal
            assert fatal.message.startswith(f"cannot load the worker {reference!r}: ")
            assert text in fatal.message
        finally:
            children.close()


def test_the_task_is_laid_out_as_a_step_pods_volumes_are(tmp_path: Path) -> None:
    step = StepEnv("ns", "wf", "r1", "u", "s", "s:s", 1, ("a", "b"), "o")
    spec = {
        "env": {**step.to_env(), "PATH": "/nowhere"},
        "input": '{"x": 1}',
        "parents": {"a": '{"y": 2}', "b": "null"},
    }
    lay_out(spec, tmp_path / "t", "mod:worker")
    assert (tmp_path / "t/input/input.json").read_text() == '{"x": 1}'
    assert (tmp_path / "t/parents/a.json").read_text() == '{"y": 2}'
    assert (tmp_path / "t/parents/b.json").read_text() == "null"
    env = json.loads((tmp_path / "t" / zygote.ENV_FILE).read_text())
    read = StepEnv.from_env(env)
    assert (str(read.input_dir), str(read.parents_dir)) == (
        str(tmp_path / "t/input"),
        str(tmp_path / "t/parents"),
    )
    assert read.worker == "mod:worker" and read.parents == ("a", "b")
    assert "PATH" not in env
    named = task_env({"env": {**step.to_env(), wire.ENV_WORKER: "other:w"}}, tmp_path, "mod:w")
    assert named[wire.ENV_WORKER] == "other:w"  # a task that names its code keeps it
    assert task_env({"env": {"KUBEHATCH_X": "1"}}, tmp_path, "m:w") == {"KUBEHATCH_X": "1"}


def test_every_line_relayed_carries_the_tasks_prefix() -> None:
    read, write = os.pipe()

    def step() -> None:  # more than a pipe holds: written while relayed
        os.write(write, b"one\ntwo\n" + b"x" * 70000 + b"\nlast without newline")
        os.close(write)

    writer = threading.Thread(target=step)
    writer.start()
    written: list[bytes] = []
    relay(b"[t] ", read, written.append)
    writer.join()
    lines = b"".join(written).split(b"\n")
    assert lines[:2] == [b"[t] one", b"[t] two"]
    assert all(line.startswith(b"[t] ") for line in lines[:-1]) and lines[-1] == b""
    assert lines[-2] == b"[t] last without newline"
    assert sum(len(line) - 4 for line in lines[2:-2]) == 70000
