"""The pool worker's loop against a fake API: claims, leases, cancellation, reports, shutdown.

The fake applies status patches as the API server does for the status subresource, with
metadata.resourceVersion as a precondition (409 when stale), so two workers on one fake
race for a task as they would on a cluster. API calls run inline, the clock is a number.
"""

from __future__ import annotations

import copy
import signal
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import pytest

from kubehatch._pool.api import Conflict, NotFound, Refused, Unavailable
from kubehatch._pool.events import Exited, Listed, Started, Watched, ZygoteReady
from kubehatch._pool.loop import CLAIM_BACKOFF, Loop
from kubehatch._pool.state import Settings
from kubehatch.api.stepenv import StepEnv

LEASE = 9


class FakeTasks:
    """WorkerTasks as the API server keeps them (status writes only)."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.failures: list[Exception] = []
        """Raised by the next patches, in order, before anything else."""
        self.report_failures: list[Exception] = []
        """Raised by the next reports (patches that finish a task), in order."""
        self.version = 100

    def add(
        self, name: str, created: str = "2026-01-01T00:00:00Z", timeout: int | None = None
    ) -> dict[str, Any]:
        step = StepEnv("ns", "wf", "run-1", "u", name, f"{name}:{name}", 1, (), "o", None, timeout)
        self.version += 1
        self.tasks[name] = {
            "metadata": {
                "name": name,
                "resourceVersion": str(self.version),
                "creationTimestamp": created,
            },
            "spec": {"pool": "fast", "env": step.to_env(), "input": "{}", "leaseSeconds": LEASE},
        }
        return copy.deepcopy(self.tasks[name])

    def change(self, name: str, **status: Any) -> dict[str, Any]:
        """Someone else writes the task's status (another worker, the operator)."""
        self.version += 1
        task = self.tasks[name]
        task.setdefault("status", {}).update(status)
        task["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(task)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.tasks[name].get("status") or {})

    def list(self) -> tuple[list[dict[str, Any]], str]:
        return copy.deepcopy(list(self.tasks.values())), str(self.version)

    def watch(self, version: str) -> Any:
        raise NotImplementedError

    def get(self, name: str) -> dict[str, Any]:
        if name not in self.tasks:
            raise NotFound("404 gone", 404)
        return copy.deepcopy(self.tasks[name])

    def patch_status(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((name, copy.deepcopy(body)))
        if self.failures:
            raise self.failures.pop(0)
        if self.report_failures and "finishedAt" in body["status"]:
            raise self.report_failures.pop(0)
        if name not in self.tasks:
            raise NotFound("404 gone", 404)
        task = self.tasks[name]
        if body["metadata"]["resourceVersion"] != task["metadata"]["resourceVersion"]:
            raise Conflict("409 the object has been modified", 409)
        return self.change(name, **body["status"])


class Inline(Executor):
    """Runs each call at once (its result is posted to the loop's queue)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


class FakeSteps:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.signals: list[tuple[str, int]] = []
        self.results: dict[str, tuple[str | None, str | None]] = {}
        self.forgotten: list[str] = []

    def run(self, name: str, task: Any) -> None:
        self.started.append(name)

    def signal(self, name: str, signum: int) -> None:
        self.signals.append((name, signum))

    def result(self, name: str) -> tuple[str | None, str | None]:
        return self.results.get(name, (None, None))

    def forget(self, name: str) -> None:
        self.forgotten.append(name)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Worker:
    """One loop with its fakes."""

    def __init__(
        self,
        tasks: FakeTasks,
        identity: str = "w-1",
        slots: int = 2,
        delays: tuple[float, ...] = (0.0, 0.0),
    ) -> None:
        self.tasks = tasks
        self.steps = FakeSteps()
        self.clock = Clock()
        self.lines: list[str] = []
        self.readiness: list[bool] = []
        settings = Settings(pool="fast", identity=identity, slots=slots)
        self.loop = Loop(
            settings,
            tasks,
            self.steps,
            Inline(),
            self.lines.append,
            ready=self.readiness.append,
            clock=self.clock,
            delays=delays,
        )

    def start(self) -> Worker:
        self.loop.post(ZygoteReady(12.0))
        self.loop.post(Listed(self.tasks.list()[0]))
        self.turn()
        return self

    def turn(self, seconds: float = 0.0) -> None:
        self.clock.now += seconds
        for _ in range(10):  # events the turn posts (the calls' answers) are handled too
            self.loop.turn()
            if self.loop.events.empty():
                return

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass a second at a time (renewals come as they would)."""
        while seconds > 1e-9:
            self.turn(min(1.0, seconds))
            seconds -= min(1.0, seconds)

    def start_steps(self) -> None:
        for name in self.steps.started:
            self.loop.post(Started(name, 4242))
        self.turn()

    def exit(
        self, name: str, code: int, output: str | None = None, message: str | None = None
    ) -> None:
        self.steps.results[name] = (output, message)
        self.loop.post(Exited(name, code))
        self.turn()


@pytest.fixture
def tasks() -> FakeTasks:
    return FakeTasks()


def test_nothing_is_claimed_before_the_code_is_loaded_and_the_tasks_listed(
    tasks: FakeTasks,
) -> None:
    tasks.add("a")
    worker = Worker(tasks)
    worker.loop.post(Listed(tasks.list()[0]))
    worker.turn()
    assert tasks.patches == [] and worker.readiness == []
    worker.loop.post(ZygoteReady(12.0))
    worker.turn()
    assert worker.readiness == [True]
    assert worker.steps.started == ["a"]


def test_the_oldest_tasks_are_claimed_up_to_the_slots_and_then_run(tasks: FakeTasks) -> None:
    tasks.add("new", "2026-01-01T00:00:09Z")
    tasks.add("old", "2026-01-01T00:00:01Z")
    tasks.add("mid", "2026-01-01T00:00:05Z")
    worker = Worker(tasks, slots=2).start()
    assert worker.steps.started == ["old", "mid"]
    name, body = tasks.patches[0]
    assert name == "old" and body["metadata"] == {"resourceVersion": "102"}
    status = tasks.status("old")
    assert (status["phase"], status["worker"]) == ("Running", "w-1")
    assert status["claimedAt"] == status["renewedAt"] and status["claimedAt"].endswith("Z")
    assert "claimed old (run-1/old/1)" in worker.lines[-2]
    worker.exit("old", 0, '{"done":true}')  # a slot frees: the next is claimed
    assert worker.steps.started == ["old", "mid", "new"]


def test_of_two_workers_exactly_one_wins_a_task(tasks: FakeTasks) -> None:
    seen = tasks.add("a")
    first, second = Worker(tasks, "w-1"), Worker(tasks, "w-2")
    for worker in (first, second):
        worker.loop.post(ZygoteReady(1.0))
        worker.loop.post(Listed([copy.deepcopy(seen)]))  # both saw it Pending
    first.turn()
    second.turn()
    assert first.steps.started == ["a"] and second.steps.started == []
    assert tasks.status("a")["worker"] == "w-1"
    assert [name for name, _ in tasks.patches] == ["a", "a"]  # the second got a 409
    assert "a" not in second.loop.pending
    tasks.add("b")
    second.loop.post(Watched("ADDED", tasks.get("b")))
    second.turn()
    assert second.steps.started == ["b"]  # and takes the next


def test_a_task_claimed_elsewhere_leaves_the_queue(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks, slots=1)
    worker.loop.post(Listed(tasks.list()[0]))
    worker.turn()
    worker.loop.post(Watched("MODIFIED", tasks.change("a", phase="Running", worker="w-9")))
    worker.loop.post(ZygoteReady(1.0))
    worker.turn()
    assert tasks.patches == [] and worker.steps.started == []


def test_a_claim_that_fails_for_a_passing_reason_is_tried_again(tasks: FakeTasks) -> None:
    tasks.add("a")
    tasks.failures.append(Unavailable("503 busy", 503))
    worker = Worker(tasks).start()
    assert worker.steps.started == [] and "claiming a failed" in worker.lines[-1]
    worker.turn(CLAIM_BACKOFF)
    assert worker.steps.started == ["a"]


def test_a_refused_claim_is_said_and_not_hammered(tasks: FakeTasks) -> None:
    tasks.add("a")
    tasks.failures.append(Refused("403 a worker claims only its own pool's tasks", 403))
    worker = Worker(tasks).start()
    assert "claiming a was refused: 403" in worker.lines[-1]
    worker.turn(0.5)
    assert len(tasks.patches) == 1


def test_the_claim_is_renewed_every_third_of_the_lease_on_the_last_write(
    tasks: FakeTasks,
) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    worker.turn(LEASE / 3 - 0.1)
    assert len(tasks.patches) == 1
    worker.turn(0.1)
    assert len(tasks.patches) == 2
    _, body = tasks.patches[1]
    assert set(body["status"]) == {"renewedAt"}
    assert body["metadata"]["resourceVersion"] == str(tasks.version - 1)  # the claim's write
    worker.turn(LEASE / 3)
    assert tasks.patches[2][1]["metadata"]["resourceVersion"] == str(tasks.version - 1)


def test_a_renewal_conflict_over_a_write_of_someone_else_keeps_the_claim(
    tasks: FakeTasks,
) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    tasks.change("a", note="the operator touched it")  # still ours, newer version
    worker.turn(LEASE / 3)
    assert [status_keys(b) for _, b in tasks.patches] == [
        {"phase", "worker", "claimedAt", "renewedAt"},
        {"renewedAt"},  # 409
        {"renewedAt"},  # written again on the version read back
    ]
    assert worker.steps.signals == []


def test_a_claim_given_up_by_the_operator_kills_the_step_and_reports_nothing(
    tasks: FakeTasks,
) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    tasks.change("a", phase="Failed", reason="WorkerLost")  # renewals were lost
    worker.turn(LEASE / 3)
    assert worker.steps.signals == [("a", signal.SIGKILL)]
    assert "lost the claim on a: it is no longer this worker's" in worker.lines[-1]
    patches = len(tasks.patches)
    worker.exit("a", -signal.SIGKILL)
    assert len(tasks.patches) == patches
    assert tasks.status("a")["reason"] == "WorkerLost"
    assert worker.steps.forgotten == ["a"] and worker.loop.attempts == {}


def test_a_watch_event_showing_the_task_lost_kills_the_step(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.loop.post(Watched("MODIFIED", tasks.change("a", phase="Failed", reason="WorkerLost")))
    worker.turn()
    assert worker.steps.signals == [("a", signal.SIGKILL)]


def test_renewals_failing_for_longer_than_the_lease_kill_the_step(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    for _ in range(LEASE + 1):
        tasks.failures.append(Unavailable("no answer", None))
        worker.turn(1.0)
    assert worker.steps.signals == [("a", signal.SIGKILL)]
    assert any("no renewal succeeded for 9s" in line for line in worker.lines)
    patches = len(tasks.patches)
    worker.exit("a", -signal.SIGKILL)
    assert len(tasks.patches) == patches  # it runs again elsewhere: nothing is reported


def test_a_deleted_task_gets_sigterm_then_sigkill_and_no_report(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    deleted = tasks.tasks.pop("a")
    worker.loop.post(Watched("DELETED", deleted))
    worker.turn()
    assert worker.steps.signals == [("a", signal.SIGTERM)]
    worker.wait(9.9)
    assert worker.steps.signals == [("a", signal.SIGTERM)]
    worker.wait(0.1)
    assert worker.steps.signals == [("a", signal.SIGTERM), ("a", signal.SIGKILL)]
    patches = len(tasks.patches)
    worker.exit("a", 143, message="cancelled: the step received SIGTERM")
    assert len(tasks.patches) == patches
    assert "a ended after" in worker.lines[-1] and "not reported (deleted)" in worker.lines[-1]


def test_a_task_being_deleted_in_the_foreground_is_stopped_at_once(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    deleting = tasks.get("a")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:05Z"
    worker.loop.post(Watched("MODIFIED", deleting))
    worker.loop.post(Watched("DELETED", deleting))
    worker.turn()
    assert worker.steps.signals == [("a", signal.SIGTERM)]  # once


def test_a_task_gone_while_the_watch_was_down_is_stopped_as_deleted(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    del tasks.tasks["a"]
    worker.loop.post(Listed(tasks.list()[0]))
    worker.turn()
    assert worker.steps.signals == [("a", signal.SIGTERM)]


def test_the_loop_wakes_for_its_next_deadline(tasks: FakeTasks) -> None:
    worker = Worker(tasks).start()
    assert worker.loop.wait_time() == 1.0  # nothing to do: the longest wait
    tasks.add("a")
    worker.loop.post(Watched("ADDED", tasks.get("a")))
    worker.turn()
    worker.turn(2.9)
    assert worker.loop.wait_time() == pytest.approx(0.1)  # the renewal at LEASE / 3


def status_keys(body: dict[str, Any]) -> set[str]:
    return set(body["status"])
