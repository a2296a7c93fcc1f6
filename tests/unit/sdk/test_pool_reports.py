"""The pool worker's loop, continued: how steps end and are reported, and shutdown
(the fakes are test_pool_loop's)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from concurrent.futures import Executor, Future
from functools import partial
from typing import Any

import pytest

from kubehatch._pool.api import Refused, Unavailable
from kubehatch._pool.events import Exited, Fatal, Shutdown, Watched
from kubehatch._pool.loop import REPORT_DELAYS
from tests.unit.sdk.test_pool_loop import LEASE, FakeTasks, Worker, status_keys, tasks

__all__ = ["tasks"]  # the fixture, shared


def test_a_step_past_its_timeout_and_the_backstop_is_killed_and_reported_timed_out(
    tasks: FakeTasks,
) -> None:
    tasks.add("a", timeout=5)
    worker = Worker(tasks).start()
    worker.start_steps()
    worker.wait(14.9)
    assert worker.steps.signals == []
    worker.wait(0.1)
    assert worker.steps.signals == [("a", signal.SIGKILL)]
    worker.exit("a", -signal.SIGKILL)
    status = tasks.status("a")
    assert (status["phase"], status["reason"]) == ("Failed", "TimedOut")


@pytest.mark.parametrize(
    ("code", "output", "message", "expected"),
    [
        (0, '{"n":1}', None, {"phase": "Succeeded", "reason": "Succeeded", "output": '{"n":1}'}),
        (
            1,
            None,
            "ValueError: x",
            {"phase": "Failed", "reason": "Error", "message": "ValueError: x"},
        ),
        (
            3,
            None,
            "PermanentError: y",
            {"reason": "PermanentError", "message": "PermanentError: y"},
        ),
        (124, None, "timed out", {"reason": "TimedOut"}),
        (143, None, "cancelled", {"reason": "Cancelled"}),
        (4, None, "cancelled by the step itself", {"reason": "SelfCancelled"}),
        (
            -signal.SIGKILL,
            None,
            None,
            {
                "reason": "Error",
                "message": "the step's process was killed by SIGKILL (out of memory?)",
            },
        ),
    ],
)
def test_the_end_of_a_step_is_reported_on_the_claims_last_version(
    tasks: FakeTasks, code: int, output: str | None, message: str | None, expected: dict[str, str]
) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    worker.exit("a", code, output, message)
    _, body = tasks.patches[-1]
    assert body["metadata"]["resourceVersion"] == str(tasks.version - 1)
    status = tasks.status("a")
    assert {k: status[k] for k in expected} == expected
    assert status["finishedAt"].endswith("Z") and status["worker"] == "w-1"
    assert worker.steps.forgotten == ["a"] and worker.loop.attempts == {}
    assert (
        f"finished a (run-1/a/1) in 0 ms, started 0.0 ms after its claim: {status['reason']}"
        in (worker.lines[-1])
    )


def test_a_report_is_retried_through_passing_failures_and_a_conflict(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    tasks.change("a", note="touched")  # the report's version is stale: 409, read, again
    tasks.failures += [Unavailable("503", 503), Unavailable("429", 429)]
    worker.exit("a", 0, "1")
    assert tasks.status("a")["phase"] == "Succeeded"
    assert len(tasks.patches) == 5  # claim, 503, 429, 409, the report


class Deferred(Executor):
    """Holds each call until the test runs it: calls in flight, answered in any order."""

    def __init__(self) -> None:
        self.calls: list[Callable[[], Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls.append(partial(fn, *args, **kwargs))
        return Future()


def reports(tasks: FakeTasks) -> int:
    return sum(1 for _, body in tasks.patches if "finishedAt" in body["status"])


def renewals(tasks: FakeTasks) -> int:
    return sum(1 for _, body in tasks.patches if status_keys(body) == {"renewedAt"})


def test_a_report_failing_through_an_outage_lands_and_the_claim_is_renewed_meanwhile(
    tasks: FakeTasks,
) -> None:
    """An API server restart or throttling must not rerun a step that succeeded: the
    report is retried, its claim kept, for as long as the lease holds."""
    tasks.add("a")
    worker = Worker(tasks, delays=REPORT_DELAYS).start()
    worker.start_steps()
    tasks.report_failures += [Unavailable("503 the API server is restarting", 503)] * 6
    worker.exit("a", 0, '{"n":1}')
    worker.wait(8.0)  # well past the few seconds a report used to be tried for
    assert (reports(tasks), renewals(tasks)) == (5, 2)
    assert tasks.status("a")["phase"] == "Running" and "a" in worker.loop.attempts
    assert (
        "reporting a failed: 503 the API server is restarting; trying again in 4s"
        in (worker.lines[-1])
    )
    worker.wait(LEASE)
    status = tasks.status("a")
    assert (status["phase"], status["output"]) == ("Succeeded", '{"n":1}')
    assert reports(tasks) == 7 and renewals(tasks) >= 3
    assert worker.loop.attempts == {} and worker.steps.forgotten == ["a"]
    assert not any("dropped" in line or "lost" in line for line in worker.lines)


def test_a_result_not_reported_within_its_lease_is_dropped_and_said(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks, delays=REPORT_DELAYS).start()
    worker.start_steps()
    tasks.failures += [Unavailable("no answer from the API server", None)] * 100
    worker.exit("a", 0, "1")
    worker.wait(LEASE)
    assert "a" in worker.loop.attempts  # the lease is not out yet
    worker.wait(1.0)
    assert worker.loop.attempts == {} and worker.steps.forgotten == ["a"]
    assert worker.lines[-1] == (
        "dropped the result of a: not reported within its lease of 9s, so it runs again "
        "(no answer from the API server)"
    )
    patches = len(tasks.patches)
    worker.wait(LEASE)
    assert len(tasks.patches) == patches  # given up for good


@pytest.mark.parametrize("deleted", [True, False], ids=["deleted", "refused"])
def test_a_report_that_can_never_land_is_dropped_at_once(tasks: FakeTasks, deleted: bool) -> None:
    tasks.add("a")
    worker = Worker(tasks, delays=REPORT_DELAYS).start()
    worker.start_steps()
    tasks.report_failures.append(Unavailable("429 too many requests", 429))
    if not deleted:
        tasks.report_failures.append(Refused("422 status.output: too long", 422))
    worker.exit("a", 0, "1")
    if deleted:
        del tasks.tasks["a"]  # its run was cancelled while the report waited
    worker.wait(1.0)
    assert worker.loop.attempts == {}
    why = "it is gone (deleted: its run was cancelled)"
    if not deleted:
        why = "its report failed: 422 status.output: too long"
    assert worker.lines[-1] == f"dropped the result of a: {why}"


def test_a_renewal_goes_out_while_a_slow_report_is_in_flight(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    calls = worker.loop.calls = Deferred()
    worker.exit("a", 0, "1")
    assert len(calls.calls) == 1  # the report, not answered yet
    worker.turn(LEASE / 3)
    assert len(calls.calls) == 2  # the claim is renewed meanwhile
    calls.calls[1]()  # the renewal lands first: the report's version is stale
    calls.calls[0]()
    worker.turn()
    assert [status_keys(b) for _, b in tasks.patches][1:] == [
        {"renewedAt"},
        {"phase", "reason", "finishedAt", "output"},  # 409: read, still ours, again
        {"phase", "reason", "finishedAt", "output"},
    ]
    assert tasks.status("a")["phase"] == "Succeeded" and worker.loop.attempts == {}


def test_a_report_on_a_task_no_longer_ours_is_dropped(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    tasks.change("a", phase="Failed", reason="WorkerLost")  # not yet seen by the worker
    worker.exit("a", 0, "1")
    assert tasks.status("a")["reason"] == "WorkerLost"
    assert "dropped the result of a: it is no longer this worker's" in worker.lines[-1]
    assert worker.loop.attempts == {}


def test_a_report_waits_for_a_renewal_in_flight_and_uses_its_version(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    worker.clock.now += LEASE / 3
    worker.loop.tick()  # the renewal is sent; its answer is not handled yet
    worker.steps.results["a"] = ("1", None)
    worker.loop.events.queue.appendleft(Exited("a", 0))  # the exit comes first
    worker.turn()
    assert [status_keys(b) for _, b in tasks.patches][1:] == [
        {"renewedAt"},
        {"phase", "reason", "finishedAt", "output"},
    ]
    assert tasks.status("a")["phase"] == "Succeeded"


def test_shutdown_stops_claiming_lets_steps_finish_and_exits_zero(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks, slots=1).start()
    worker.start_steps()
    worker.loop.post(Shutdown())
    worker.turn()
    assert worker.readiness == [True, False]
    tasks.add("b")
    worker.loop.post(Watched("ADDED", tasks.get("b")))
    worker.exit("a", 0, "1")
    assert worker.steps.started == ["a"]  # b is left to the other workers
    assert worker.loop.exit_code == 0 and worker.lines[-1] == "stopped"


def test_steps_still_running_after_the_grace_period_are_stopped_and_run_again(
    tasks: FakeTasks,
) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.start_steps()
    worker.loop.post(Shutdown())
    worker.turn()
    worker.wait(24.9)
    assert worker.steps.signals == []
    worker.wait(0.1)
    assert worker.steps.signals == [("a", signal.SIGTERM)]
    worker.wait(3.0)
    assert worker.steps.signals == [("a", signal.SIGTERM), ("a", signal.SIGKILL)]
    worker.exit("a", -signal.SIGKILL)
    status = tasks.status("a")
    assert (status["phase"], status["reason"]) == ("Failed", "Cancelled")
    assert worker.loop.exit_code == 0


def test_a_second_signal_stops_the_steps_at_once(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.loop.post(Shutdown())
    worker.loop.post(Shutdown(now=True))
    worker.turn()
    assert worker.steps.signals == [("a", signal.SIGTERM)]


def test_a_fatal_error_kills_the_steps_and_exits_one(tasks: FakeTasks) -> None:
    tasks.add("a")
    worker = Worker(tasks).start()
    worker.loop.post(Fatal("the process that starts the steps ended unexpectedly"))
    worker.turn()
    assert worker.loop.exit_code == 1
    assert worker.steps.signals == [("a", signal.SIGKILL)]
    assert worker.lines[-1] == "the process that starts the steps ended unexpectedly"
