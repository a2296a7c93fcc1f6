"""The pool worker's decisions: what to claim, when to renew, how an exit is reported."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from typing import Any

import pytest

from kubehatch._pool import claims
from kubehatch._pool.claims import Outcome, Stop
from kubehatch.api import wire
from kubehatch.api.stepenv import StepEnv
from kubehatch.api.workertask import MAX_MESSAGE_BYTES, TaskPhase, TaskReason, WorkerTaskStatus

STEP = StepEnv("ns", "wf", "run-1", "uid", "load", "load:load", 2, (), "o", None, 30)


def task(
    name: str = "t1",
    *,
    pool: str = "fast",
    created: str = "2026-01-01T00:00:00Z",
    status: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "resourceVersion": "7", "creationTimestamp": created, **meta},
        "spec": {"pool": pool, "env": STEP.to_env() if env is None else env, "leaseSeconds": 9},
    }
    if status is not None:
        body["status"] = status
    return body


def test_timestamps_are_utc_rfc3339_with_microseconds_always() -> None:
    at = datetime(2026, 11, 30, 18, 0, 0, 123456, tzinfo=UTC)
    assert claims.timestamp(at) == "2026-11-30T18:00:00.123456Z"
    assert claims.timestamp(at.replace(microsecond=0)) == "2026-11-30T18:00:00.000000Z"
    assert claims.timestamp().endswith("Z") and len(claims.timestamp()) == 27
    # and the model of the task's status reads them
    status = WorkerTaskStatus.model_validate({"claimedAt": claims.timestamp(at)})
    assert status.claimed_at == at


@pytest.mark.parametrize(
    ("body", "claimable"),
    [
        (task(), True),  # no status yet
        (task(status={}), True),
        (task(status={"phase": "Pending"}), True),
        (task(status={"phase": "Pending", "worker": "w-1"}), False),  # someone's already
        (task(status={"phase": "Running", "worker": "w-1"}), False),
        (task(status={"phase": "Succeeded"}), False),
        (task(status={"phase": "Failed", "reason": "WorkerLost"}), False),
        (task(pool="other"), False),
        (task(deletionTimestamp="2026-01-01T00:00:01Z"), False),
        (task(name=""), False),
    ],
)
def test_only_pending_unclaimed_tasks_of_the_pool_are_claimable(
    body: dict[str, Any], claimable: bool
) -> None:
    assert claims.is_claimable(body, "fast") is claimable


def test_a_task_with_a_deletion_timestamp_is_being_deleted() -> None:
    assert claims.is_deleting(task(deletionTimestamp="2026-01-01T00:00:01Z"))
    assert not claims.is_deleting(task())


def test_the_task_waiting_longest_is_claimed_first_then_by_name() -> None:
    tasks = [
        task("c", created="2026-01-01T00:00:02Z"),
        task("b", created="2026-01-01T00:00:01Z"),
        task("a", created="2026-01-01T00:00:02Z"),
        task("old", created="2026-01-01T00:00:00Z", status={"phase": "Running", "worker": "x"}),
        task("other", created="2025-01-01T00:00:00Z", pool="slow"),
    ]
    order = []
    skip: set[str] = set()
    while (found := claims.next_claim(tasks, "fast", skip)) is not None:
        order.append(claims.name_of(found))
        skip.add(claims.name_of(found))
    assert order == ["b", "a", "c"]
    assert claims.next_claim([], "fast") is None


def test_the_claim_is_a_status_write_conditional_on_the_version_seen() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert claims.claim_patch("41", "pool-abc-x1", at) == {
        "metadata": {"resourceVersion": "41"},
        "status": {
            "phase": "Running",
            "worker": "pool-abc-x1",
            "claimedAt": "2026-01-01T00:00:00.000000Z",
            "renewedAt": "2026-01-01T00:00:00.000000Z",
        },
    }
    assert claims.renewal_patch("42", at) == {
        "metadata": {"resourceVersion": "42"},
        "status": {"renewedAt": "2026-01-01T00:00:00.000000Z"},
    }


@pytest.mark.parametrize(
    ("status", "ours", "taken"),
    [
        ({"phase": "Running", "worker": "me"}, True, False),
        ({"phase": "Running", "worker": "you"}, False, True),
        ({"phase": "Failed", "worker": "me", "reason": "WorkerLost"}, False, True),
        ({"phase": "Succeeded", "worker": "me"}, False, True),
        ({"phase": "Pending"}, False, False),  # a stale copy: no one else has it
        (None, False, False),
    ],
)
def test_whether_a_claim_still_holds(
    status: dict[str, Any] | None, ours: bool, taken: bool
) -> None:
    assert claims.is_ours(task(status=status), "me") is ours
    assert claims.is_taken(task(status=status), "me") is taken


def test_renewals_come_every_third_of_the_lease_and_sooner_after_a_failure() -> None:
    assert claims.renew_every(15) == 5
    assert claims.next_renewal(100.0, 15, failed=False) == 105.0
    assert claims.next_renewal(100.0, 15, failed=True) == 101.0
    assert claims.next_renewal(100.0, 3, failed=True) == 101.0  # never later than usual
    assert claims.next_renewal(100.0, 1.5, failed=True) == 100.5


def test_a_lease_lapses_when_no_renewal_succeeded_for_its_length() -> None:
    assert not claims.lease_lapsed(100.0, 15, 115.0)
    assert claims.lease_lapsed(100.0, 15, 115.1)


def test_lease_timeout_and_label_come_from_the_task() -> None:
    body = task()
    assert claims.lease_of(body) == 9
    assert claims.lease_of({"spec": {}}) == 15
    assert claims.lease_of({"spec": {"leaseSeconds": "x"}}) == 15
    assert claims.timeout_of(body) == 30
    assert claims.timeout_of(task(env={**STEP.to_env(), "KUBEHATCH_TIMEOUT_SECONDS": "0"})) is None
    untimed = StepEnv("ns", "wf", "r", "u", "s", "s:s", 1, (), "o")
    assert claims.timeout_of(task(env=untimed.to_env())) is None
    assert claims.timeout_of(task(env={})) is None
    assert claims.describe(body) == "run-1/load/2"
    item = StepEnv("ns", "wf", "r", "u", "each", "e:e", 1, (), "o", item=3, item_value="1")
    assert claims.describe(task(env=item.to_env())) == "r/each[3]/1"
    assert claims.describe(task(env={})) == "?"


def test_the_timeout_backstop_is_ten_seconds_past_the_steps_own_timeout() -> None:
    assert claims.kill_deadline(100.0, 30) == 140.0
    assert claims.kill_deadline(100.0, None) is None


@pytest.mark.parametrize(
    ("code", "phase", "reason"),
    [
        (wire.EXIT_SUCCEEDED, TaskPhase.SUCCEEDED, TaskReason.SUCCEEDED),
        (wire.EXIT_FAILED, TaskPhase.FAILED, TaskReason.ERROR),
        (wire.EXIT_PERMANENT, TaskPhase.FAILED, TaskReason.PERMANENT),
        (wire.EXIT_SELF_CANCELLED, TaskPhase.FAILED, TaskReason.SELF_CANCELLED),
        (wire.EXIT_TIMED_OUT, TaskPhase.FAILED, TaskReason.TIMED_OUT),
        (wire.EXIT_CANCELLED, TaskPhase.FAILED, TaskReason.CANCELLED),
        (2, TaskPhase.FAILED, TaskReason.ERROR),
        (130, TaskPhase.FAILED, TaskReason.ERROR),
        (-signal.SIGKILL, TaskPhase.FAILED, TaskReason.ERROR),
        (-signal.SIGSEGV, TaskPhase.FAILED, TaskReason.ERROR),
    ],
)
def test_exit_codes_are_the_step_pods(code: int, phase: TaskPhase, reason: TaskReason) -> None:
    assert claims.reason_of(code) == (phase, reason)


def test_a_success_reports_its_output_and_a_failure_its_message() -> None:
    assert claims.outcome(0, output='{"a":1}', message=None) == Outcome(
        TaskPhase.SUCCEEDED, TaskReason.SUCCEEDED, None, '{"a":1}'
    )
    failed = claims.outcome(3, output=None, message="PermanentError: no")
    assert failed == Outcome(TaskPhase.FAILED, TaskReason.PERMANENT, "PermanentError: no")
    silent = claims.outcome(7, output=None, message=None)
    assert silent.message == "the step's process exited with status 7"
    lost_output = claims.outcome(0, output=None, message=None)
    assert (lost_output.phase, lost_output.reason) == (TaskPhase.FAILED, TaskReason.ERROR)


@pytest.mark.parametrize(
    ("signum", "message"),
    [
        (signal.SIGKILL, "the step's process was killed by SIGKILL (out of memory?)"),
        (signal.SIGSEGV, "the step's process was killed by SIGSEGV (a crash in native code?)"),
        (signal.SIGTERM, "the step's process was killed by SIGTERM"),
        (200, "the step's process was killed by signal 200"),
    ],
)
def test_a_killed_child_says_by_what(signum: int, message: str) -> None:
    outcome = claims.outcome(-signum, output=None, message="stale message")
    assert (outcome.reason, outcome.message) == (TaskReason.ERROR, message)


def test_the_workers_own_stops_decide_the_report() -> None:
    timed = claims.outcome(
        -signal.SIGKILL, output=None, message=None, stop=Stop.TIMEOUT, timeout_seconds=5
    )
    assert timed.reason is TaskReason.TIMED_OUT
    assert timed.message is not None and "timeout of 5s" in timed.message
    down = claims.outcome(143, output=None, message="cancelled", stop=Stop.SHUTDOWN, worker="w-1")
    assert down.reason is TaskReason.CANCELLED  # the operator runs it again
    assert down.message is not None and "worker w-1 shut down" in down.message
    finished_anyway = claims.outcome(0, output="1", message=None, stop=Stop.SHUTDOWN)
    assert finished_anyway.reason is TaskReason.SUCCEEDED
    assert Stop.SHUTDOWN.reports and Stop.TIMEOUT.reports
    assert not Stop.DELETED.reports and not Stop.LOST.reports


def test_messages_are_clipped_to_the_status_limit_on_a_character_boundary() -> None:
    long = "é" * MAX_MESSAGE_BYTES
    clipped = claims.outcome(1, output=None, message=long).message
    assert clipped is not None and len(clipped.encode()) <= MAX_MESSAGE_BYTES
    assert clipped == "é" * (MAX_MESSAGE_BYTES // 2)
    assert claims.clip("short") == "short"


def test_the_report_is_conditional_and_carries_only_what_applies() -> None:
    at = datetime(2026, 1, 1, 0, 0, 1, 5, tzinfo=UTC)
    ok = Outcome(TaskPhase.SUCCEEDED, TaskReason.SUCCEEDED, None, "{}").patch("9", at)
    assert ok == {
        "metadata": {"resourceVersion": "9"},
        "status": {
            "phase": "Succeeded",
            "reason": "Succeeded",
            "finishedAt": "2026-01-01T00:00:01.000005Z",
            "output": "{}",
        },
    }
    failed = Outcome(TaskPhase.FAILED, TaskReason.ERROR, "boom").patch("9", at)["status"]
    assert failed["message"] == "boom" and "output" not in failed
    WorkerTaskStatus.model_validate(failed)  # what the status schema takes


def test_stop_lines_say_what_happens() -> None:
    assert "SIGKILL in 10s" in claims.stop_line("t", Stop.DELETED, "", 10, None)
    assert claims.stop_line("t", Stop.LOST, "gone", 10, None) == (
        "lost the claim on t: gone; killed its step"
    )
    assert "timeout of 30s" in claims.stop_line("t", Stop.TIMEOUT, "", 10, 30)
    assert "shutting down" in claims.stop_line("t", Stop.SHUTDOWN, "", 10, None)
