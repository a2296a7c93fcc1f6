"""Every phase transition of a run, decided without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubehatch.api import wire
from kubehatch.api.workflow import WorkflowSpec
from kubehatch.api.workflowrun import (
    StepPhase,
    StepStatus,
    WorkflowRunPhase,
    WorkflowRunSpec,
    WorkflowRunStatus,
)
from kubehatch_operator.decisions import decide
from kubehatch_operator.model import Attempt, AttemptState, Decision, Run

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def workflow(*steps: dict, **extra: object) -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {"image": "img:1", "service": "svc", "steps": list(steps), **extra}
    )


def step(name: str, *parents: str, **extra: object) -> dict:
    return {"name": name, "action": name, "parents": list(parents), **extra}


DIAMOND = workflow(step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c"))


def new_run(**spec: object) -> Run:
    return Run(
        name="r1",
        generation=1,
        spec=WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}, **spec}),
        status=WorkflowRunStatus(),
    )


def after(run: Run, decision: Decision) -> Run:
    """The run as the next reconcile sees it, once the decision's status was written."""
    return Run(run.name, run.generation, run.spec, decision.status)


def name(step: str, attempt: int) -> str:
    """The Job name of run r1's attempt (uid "" in these tests)."""
    return wire.job_name("r1", "", step, attempt)


def output(step: str, attempt: int) -> str:
    return wire.output_configmap_name(name(step, attempt))


def job(step: str, attempt: int, state: AttemptState, **kw: object) -> Attempt:
    return Attempt(step, attempt, name(step, attempt), state, **kw)


def started(wf: WorkflowSpec, **spec: object) -> tuple[Run, Decision]:
    run = new_run(**spec)
    decision = decide(run, wf, [], T0)
    return after(run, decision), decision


# --- before the start ----------------------------------------------------------------


def test_missing_workflow_keeps_the_run_pending_with_a_reason() -> None:
    decision = decide(new_run(), None, [], T0)
    assert decision.status.phase is WorkflowRunPhase.PENDING
    cond = decision.status.conditions[0]
    assert (cond.type, cond.status.value, cond.reason) == (
        "Succeeded",
        "Unknown",
        "WorkflowNotFound",
    )
    assert "'wf'" in cond.message
    assert not decision.start and not decision.create_input and decision.wake_at is None


def test_invalid_workflow_names_the_problem() -> None:
    decision = decide(new_run(), "steps[1].parents[0]: unknown parent 'x'", [], T0)
    cond = decision.status.conditions[0]
    assert cond.reason == "WorkflowInvalid"
    assert "unknown parent 'x'" in cond.message
    assert not decision.start


def test_scheduled_run_waits_for_its_time_then_starts() -> None:
    at = T0 + timedelta(minutes=5)
    run = new_run(scheduledAt=at.isoformat())
    waiting = decide(run, DIAMOND, [], T0)
    assert waiting.status.phase is WorkflowRunPhase.PENDING
    assert waiting.status.conditions[0].reason == "Scheduled"
    assert waiting.wake_at == at and not waiting.start
    due = decide(after(run, waiting), DIAMOND, [], at)
    assert due.status.phase is WorkflowRunPhase.RUNNING
    assert [s.step.name for s in due.start] == ["a"]


def test_start_snapshots_the_workflow_and_starts_every_root() -> None:
    wf = workflow(step("x"), step("y"), step("z", "x", "y"))
    decision = decide(new_run(input={"k": 1}), wf, [], T0)
    status = decision.status
    assert status.phase is WorkflowRunPhase.RUNNING
    assert status.workflow_spec == wf
    assert status.started_at == T0
    assert status.input_config_map is None and not decision.create_input  # small: inline
    assert [(s.step.name, s.attempt, s.job_name, s.parents) for s in decision.start] == [
        ("x", 1, name("x", 1), {}),
        ("y", 1, name("y", 1), {}),
    ]
    assert status.steps["x"].phase is StepPhase.RUNNING and status.steps["x"].attempts == 1
    assert status.steps["z"].phase is StepPhase.PENDING
    assert status.progress == "0/3"
    reasons = [e.reason for e in decision.events]
    assert reasons == ["StepRunning", "StepRunning", "RunRunning"]


def test_an_input_too_large_for_the_environment_is_stored_in_a_configmap_at_start() -> None:
    small = {"blob": "x" * (wire.INLINE_INPUT_BYTES - 20)}
    large = {"blob": "x" * wire.INLINE_INPUT_BYTES}
    inline = decide(new_run(input=small), workflow(step("x")), [], T0)
    stored = decide(new_run(input=large), workflow(step("x")), [], T0)
    assert inline.status.input_config_map is None and not inline.create_input
    assert stored.status.input_config_map == wire.input_configmap_name("r1", "")
    assert stored.create_input


# --- steady progress ---------------------------------------------------------------------


def test_reconciling_again_starts_nothing_twice() -> None:
    run, _ = started(DIAMOND)
    again = decide(run, DIAMOND, [job("a", 1, AttemptState.ACTIVE, started_at=T0)], T0)
    assert again.start == [] and again.events == []
    assert again.status.steps["a"].phase is StepPhase.RUNNING


def test_job_created_before_a_crash_is_adopted_not_duplicated() -> None:
    # The operator created a's Job, then died before writing status: only the snapshot exists.
    run, first = started(DIAMOND)
    lost = first.status.model_copy(deep=True)
    lost.steps["a"] = StepStatus()
    run = Run(run.name, 1, run.spec, lost)
    decision = decide(run, DIAMOND, [job("a", 1, AttemptState.ACTIVE)], T0)
    assert decision.start == []
    assert decision.status.steps["a"].phase is StepPhase.RUNNING


def test_status_without_its_job_recreates_the_same_job_name() -> None:
    # Status was written but the Job create never happened (or is not yet seen).
    run, _ = started(DIAMOND)
    decision = decide(run, DIAMOND, [], T0)
    assert [(s.job_name, s.attempt) for s in decision.start] == [(name("a", 1), 1)]


def test_children_start_when_their_parent_succeeds_with_its_output() -> None:
    run, _ = started(DIAMOND)
    decision = decide(run, DIAMOND, [job("a", 1, AttemptState.SUCCEEDED, finished_at=T0)], T0)
    assert sorted(s.step.name for s in decision.start) == ["b", "c"]
    assert all(s.parents == {"a": output("a", 1)} for s in decision.start)
    assert decision.status.steps["a"].output_config_map == output("a", 1)
    assert decision.status.progress == "1/4"


def test_join_waits_for_all_parents_and_reads_every_output() -> None:
    run, _ = started(DIAMOND)
    a = job("a", 1, AttemptState.SUCCEEDED)
    run = after(run, decide(run, DIAMOND, [a], T0))
    only_b = decide(
        run, DIAMOND, [a, job("b", 1, AttemptState.SUCCEEDED), job("c", 1, AttemptState.ACTIVE)], T0
    )
    assert only_b.start == []
    run = after(run, only_b)
    both = decide(
        run,
        DIAMOND,
        [a, job("b", 1, AttemptState.SUCCEEDED), job("c", 1, AttemptState.SUCCEEDED)],
        T0,
    )
    assert [(s.step.name, s.parents) for s in both.start] == [
        ("d", {"b": output("b", 1), "c": output("c", 1)})
    ]


def test_all_steps_succeeded_finishes_the_run() -> None:
    wf = workflow(step("only"))
    run, _ = started(wf)
    done = decide(
        run, wf, [job("only", 1, AttemptState.SUCCEEDED, finished_at=T0)], T0 + timedelta(seconds=3)
    )
    assert done.status.phase is WorkflowRunPhase.SUCCEEDED
    assert done.status.finished_at == T0 + timedelta(seconds=3)
    assert done.status.duration == "3s"
    cond = done.status.conditions[0]
    assert (cond.status.value, cond.reason) == ("True", "Succeeded")
    assert done.status.progress == "1/1"
    assert [e.reason for e in done.events] == ["StepSucceeded", "RunSucceeded"]
    assert "after 3s" in done.events[-1].message


def test_a_workflow_edited_after_start_does_not_change_the_run() -> None:
    run, _ = started(DIAMOND)
    edited = workflow(step("a"), step("other", "a"))
    decision = decide(run, edited, [job("a", 1, AttemptState.SUCCEEDED)], T0)
    assert sorted(s.step.name for s in decision.start) == ["b", "c"]
    assert decision.status.workflow_spec == DIAMOND


# --- failures and retries ------------------------------------------------------------


RETRYING = workflow(
    step("flaky", retries=2, backoff={"initial": "10s", "multiplier": 2, "max": "1m"}),
    step("after", "flaky"),
)


def test_failed_attempt_waits_for_its_backoff_then_retries_with_a_new_job() -> None:
    run, _ = started(RETRYING)
    failed1 = job("flaky", 1, AttemptState.FAILED, finished_at=T0, message="ValueError: boom")
    waiting = decide(run, RETRYING, [failed1], T0 + timedelta(seconds=2))
    flaky = waiting.status.steps["flaky"]
    assert flaky.phase is StepPhase.RETRYING
    assert flaky.next_attempt_at == T0 + timedelta(seconds=10)
    assert "ValueError: boom" in (flaky.message or "")
    assert waiting.wake_at == T0 + timedelta(seconds=10) and waiting.start == []
    assert [e.type for e in waiting.events] == ["Warning"]

    run = after(run, waiting)
    retry = decide(run, RETRYING, [failed1], T0 + timedelta(seconds=10))
    assert [(s.job_name, s.attempt) for s in retry.start] == [(name("flaky", 2), 2)]
    assert retry.status.steps["flaky"].phase is StepPhase.RUNNING
    assert retry.status.steps["flaky"].next_attempt_at is None


def test_second_retry_backs_off_longer() -> None:
    run, _ = started(RETRYING)
    attempts = [
        job("flaky", 1, AttemptState.FAILED, finished_at=T0),
        job("flaky", 2, AttemptState.FAILED, finished_at=T0 + timedelta(seconds=30)),
    ]
    decision = decide(run, RETRYING, attempts, T0 + timedelta(seconds=31))
    assert decision.status.steps["flaky"].next_attempt_at == T0 + timedelta(seconds=50)


def test_retries_exhausted_fails_the_run_and_skips_children() -> None:
    run, _ = started(RETRYING)
    attempts = [
        job("flaky", n, AttemptState.FAILED, finished_at=T0, message="boom") for n in (1, 2, 3)
    ]
    decision = decide(run, RETRYING, attempts, T0 + timedelta(minutes=5))
    status = decision.status
    assert status.phase is WorkflowRunPhase.FAILED
    assert status.steps["flaky"].phase is StepPhase.FAILED
    assert status.steps["flaky"].attempts == 3
    assert "after 3 attempts" in (status.steps["flaky"].message or "")
    assert status.steps["after"].phase is StepPhase.SKIPPED
    cond = status.conditions[0]
    assert (cond.status.value, cond.reason) == ("False", "StepFailed")
    assert "step flaky failed" in cond.message
    assert decision.start == []


def test_step_timeout_is_reported_as_timed_out_and_fails_the_run() -> None:
    wf = workflow(step("slow", timeout="30s"), step("next", "slow"))
    run, _ = started(wf)
    decision = decide(run, wf, [job("slow", 1, AttemptState.FAILED, timed_out=True)], T0)
    assert decision.status.steps["slow"].phase is StepPhase.TIMED_OUT
    assert "step timeout of 30s" in (decision.status.steps["slow"].message or "")
    assert decision.status.phase is WorkflowRunPhase.FAILED
    assert decision.status.steps["next"].phase is StepPhase.SKIPPED


def test_with_fail_fast_a_failure_stops_siblings_still_running() -> None:
    fast = DIAMOND.model_copy(update={"fail_fast": True})
    run, _ = started(fast)
    attempts = [
        job("a", 1, AttemptState.SUCCEEDED),
        job("b", 1, AttemptState.FAILED, message="bad"),
        job("c", 1, AttemptState.ACTIVE),
    ]
    run = after(run, decide(run, fast, attempts[:1], T0))
    decision = decide(run, fast, attempts, T0)
    assert decision.stop_jobs == [name("c", 1)]
    assert decision.status.steps["c"].phase is StepPhase.CANCELLED
    assert decision.status.steps["d"].phase is StepPhase.SKIPPED
    assert decision.status.phase is WorkflowRunPhase.FAILED


def test_a_failure_stops_only_what_depends_on_it() -> None:
    """Hatchet's default: b fails, its child d is skipped, its sibling c runs to its end;
    the run is Failed once nothing runs, with c's output kept."""
    run, _ = started(DIAMOND)
    attempts = [
        job("a", 1, AttemptState.SUCCEEDED),
        job("b", 1, AttemptState.FAILED, message="bad"),
        job("c", 1, AttemptState.ACTIVE),
    ]
    run = after(run, decide(run, DIAMOND, attempts[:1], T0))
    decision = decide(run, DIAMOND, attempts, T0)
    status = decision.status
    assert decision.stop_jobs == []
    assert status.phase is WorkflowRunPhase.RUNNING
    assert status.steps["c"].phase is StepPhase.RUNNING
    assert status.steps["d"].phase is StepPhase.SKIPPED
    assert status.steps["d"].message == "not run: parent b failed"
    attempts[2] = job("c", 1, AttemptState.SUCCEEDED)
    done = decide(after(run, decision), DIAMOND, attempts, T0)
    assert done.status.phase is WorkflowRunPhase.FAILED
    assert done.status.steps["c"].phase is StepPhase.SUCCEEDED
    assert done.status.steps["c"].output_config_map == output("c", 1)
    condition = done.status.conditions[0]
    assert (condition.reason, condition.message) == ("StepFailed", "step b failed: bad")
    assert done.status.progress == "2/4"


def test_a_skip_goes_down_a_whole_branch_in_one_pass() -> None:
    chain = workflow(step("a"), step("b", "a"), step("c", "b"), step("x"))
    run, _ = started(chain)
    attempts = [job("a", 1, AttemptState.FAILED, message="boom"), job("x", 1, AttemptState.ACTIVE)]
    decision = decide(run, chain, attempts, T0)
    phases = {n: s.phase for n, s in decision.status.steps.items()}
    assert phases == {
        "a": StepPhase.FAILED,
        "b": StepPhase.SKIPPED,
        "c": StepPhase.SKIPPED,
        "x": StepPhase.RUNNING,
    }
    assert decision.status.steps["c"].message == "not run: parent b skipped"


# --- cancellation and run timeout ---------------------------------------------------------


def test_cancel_stops_running_jobs_and_skips_the_rest() -> None:
    run, _ = started(DIAMOND)
    run = Run(run.name, 2, run.spec.model_copy(update={"cancel": True}), run.status)
    decision = decide(run, DIAMOND, [job("a", 1, AttemptState.ACTIVE)], T0)
    assert decision.status.phase is WorkflowRunPhase.CANCELLED
    assert decision.stop_jobs == [name("a", 1)]
    assert decision.status.steps["a"].phase is StepPhase.CANCELLED
    assert decision.status.steps["d"].phase is StepPhase.SKIPPED
    assert decision.status.conditions[0].reason == "Cancelled"
    assert decision.status.conditions[0].observed_generation == 2


def test_run_timeout_times_out_the_run() -> None:
    wf = workflow(step("a"), step("b", "a"), timeout="1m")
    run, first = started(wf)
    assert first.wake_at == T0 + timedelta(minutes=1)
    decision = decide(run, wf, [job("a", 1, AttemptState.ACTIVE)], T0 + timedelta(minutes=1))
    assert decision.status.phase is WorkflowRunPhase.TIMED_OUT
    assert decision.stop_jobs == [name("a", 1)]
    assert decision.status.steps["a"].phase is StepPhase.TIMED_OUT
    assert decision.status.steps["b"].phase is StepPhase.SKIPPED
    assert "timeout of 1m" in decision.status.conditions[0].message


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled", "TimedOut"])
def test_finished_runs_never_change_but_stop_leftover_jobs(phase: str) -> None:
    run, _ = started(DIAMOND)
    status = run.status.model_copy(update={"phase": WorkflowRunPhase(phase)})
    run = Run(run.name, 1, run.spec, status)
    decision = decide(run, DIAMOND, [job("a", 1, AttemptState.ACTIVE)], T0)
    assert decision.status.phase is WorkflowRunPhase(phase)
    assert decision.stop_jobs == [name("a", 1)]
    assert decision.start == [] and decision.events == []


def test_permanent_failure_is_never_retried() -> None:
    run, _ = started(RETRYING)
    failed = job(
        "flaky",
        1,
        AttemptState.FAILED,
        finished_at=T0,
        message="PermanentError: no",
        permanent=True,
    )
    decision = decide(run, RETRYING, [failed], T0)
    assert decision.status.steps["flaky"].phase is StepPhase.FAILED
    assert decision.status.phase is WorkflowRunPhase.FAILED
    assert decision.start == []


@pytest.mark.parametrize("waiting", ["scheduled", "no-workflow"])
def test_cancelling_a_run_that_never_started_ends_it(waiting: str) -> None:
    later = (T0 + timedelta(days=1)).isoformat()
    spec = {"cancel": True, **({"scheduledAt": later} if waiting == "scheduled" else {})}
    run = new_run(**spec)
    key_job = Attempt("concurrency.key", 1, name("concurrency.key", 1), AttemptState.ACTIVE)
    decision = decide(run, DIAMOND if waiting == "scheduled" else None, [key_job], T0)
    assert decision.status.phase is WorkflowRunPhase.CANCELLED
    assert decision.stop_jobs == [name("concurrency.key", 1)]
    assert decision.start == [] and decision.wake_at is None


# --- the on-failure step -----------------------------------------------------------------------
ON_FAILURE = workflow(step("step1"), onFailure=step("on-failure"))


def test_the_on_failure_step_runs_after_a_failure_and_the_run_stays_failed() -> None:
    """Hatchet's own example: step1 raises, the on-failure step returns; the run reports
    step1's error and exactly two step results."""
    run, first = started(ON_FAILURE)
    assert set(first.status.steps) == {"step1", "on-failure"}
    assert [s.step.name for s in first.start] == ["step1"]
    failed = [job("step1", 1, AttemptState.FAILED, message="ValueError: step1 failed")]
    hooked = decide(run, ON_FAILURE, failed, T0)
    assert hooked.status.phase is WorkflowRunPhase.RUNNING
    (start,) = hooked.start
    assert start.step.name == "on-failure" and start.parents == {}
    assert start.failures == {"step1": "failed: ValueError: step1 failed"}
    run = after(run, hooked)
    # Its Job lost (a crash): made again under the same name, with the failures again.
    again = decide(run, ON_FAILURE, failed, T0)
    assert [(s.job_name, s.failures) for s in again.start] == [(start.job_name, start.failures)]
    done = decide(run, ON_FAILURE, [*failed, job("on-failure", 1, AttemptState.SUCCEEDED)], T0)
    status = done.status
    assert status.phase is WorkflowRunPhase.FAILED
    assert {n: s.phase for n, s in status.steps.items()} == {
        "step1": StepPhase.FAILED,
        "on-failure": StepPhase.SUCCEEDED,
    }
    assert status.conditions[0].message == "step step1 failed: ValueError: step1 failed"


def test_without_a_failure_the_on_failure_step_is_skipped() -> None:
    run, _ = started(ON_FAILURE)
    done = decide(run, ON_FAILURE, [job("step1", 1, AttemptState.SUCCEEDED)], T0)
    assert done.status.phase is WorkflowRunPhase.SUCCEEDED
    assert done.status.steps["on-failure"].phase is StepPhase.SKIPPED
    assert done.start == []


def test_with_fail_fast_the_others_stop_and_the_on_failure_step_still_runs() -> None:
    spec = workflow(step("a"), step("b"), onFailure=step("cleanup"), failFast=True)
    run, _ = started(spec)
    attempts = [job("a", 1, AttemptState.FAILED, message="boom"), job("b", 1, AttemptState.ACTIVE)]
    decision = decide(run, spec, attempts, T0)
    assert decision.stop_jobs == [name("b", 1)]
    assert decision.status.steps["b"].phase is StepPhase.CANCELLED
    assert [s.step.name for s in decision.start] == ["cleanup"]
    assert decision.status.phase is WorkflowRunPhase.RUNNING


def test_an_on_failure_step_needs_its_own_name_and_no_parents() -> None:
    with pytest.raises(ValueError, match="is another step's name"):
        workflow(step("a"), onFailure=step("a"))
    with pytest.raises(ValueError, match="it takes no parents"):
        workflow(step("a"), onFailure=step("hook", "a"))


def test_the_failures_handed_to_the_on_failure_step_fit_in_one_variable() -> None:
    many = workflow(*(step(f"s{i}") for i in range(40)), onFailure=step("hook"))
    run, _ = started(many)
    huge = "x" * 4000
    failed = [job(f"s{i}", 1, AttemptState.FAILED, message=huge) for i in range(40)]
    (start,) = decide(run, many, failed, T0).start
    assert start.failures is not None and len(start.failures) == 40
    assert sum(len(m.encode()) for m in start.failures.values()) <= 64 * 1024
    assert all(m.endswith("...") for m in start.failures.values())
