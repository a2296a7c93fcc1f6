"""Hook steps (onFailure, onSuccess, onExit), parent rules and conditions, decided
without a cluster."""

from __future__ import annotations

import pytest

from kubehatch.api.workflowrun import StepPhase, WorkflowRunPhase
from kubehatch_operator.conditions import Unreadable, needs_outputs
from kubehatch_operator.decisions import decide
from kubehatch_operator.model import AttemptState, Run
from tests.unit.operator.test_decisions import T0, after, job, output, started, step, workflow

OK, FAILED = AttemptState.SUCCEEDED, AttemptState.FAILED


def phases(decision: object) -> dict[str, StepPhase]:
    return {n: s.phase for n, s in decision.status.steps.items()}  # type: ignore[attr-defined]


# --- hooks ---------------------------------------------------------------------------------
HOOKED = workflow(
    step("a"),
    onFailure=step("on-failure"),
    onSuccess=step("on-success"),
    onExit=step("on-exit"),
)


def test_on_success_runs_when_nothing_failed_then_on_exit_runs_last() -> None:
    run, _ = started(HOOKED)
    done_a = [job("a", 1, OK)]
    first = decide(run, HOOKED, done_a, T0)
    assert [s.step.name for s in first.start] == ["on-success"]
    assert phases(first)["on-failure"] is StepPhase.SKIPPED
    assert first.status.steps["on-failure"].message == "not run: no step failed"
    assert phases(first)["on-exit"] is StepPhase.PENDING
    run = after(run, first)
    second = decide(run, HOOKED, [*done_a, job("on-success", 1, OK)], T0)
    (start,) = second.start
    assert start.step.name == "on-exit" and start.failures == {}
    run = after(run, second)
    end = decide(run, HOOKED, [*done_a, job("on-success", 1, OK), job("on-exit", 1, OK)], T0)
    assert end.status.phase is WorkflowRunPhase.SUCCEEDED


def test_after_a_failure_on_failure_runs_then_on_exit_with_the_failures() -> None:
    run, _ = started(HOOKED)
    failed = [job("a", 1, FAILED, message="boom")]
    first = decide(run, HOOKED, failed, T0)
    assert [s.step.name for s in first.start] == ["on-failure"]
    assert first.status.steps["on-success"].message == "not run: a step failed"
    run = after(run, first)
    second = decide(run, HOOKED, [*failed, job("on-failure", 1, OK)], T0)
    (start,) = second.start
    assert start.step.name == "on-exit" and start.failures == {"a": "failed: boom"}
    run = after(run, second)
    end = decide(run, HOOKED, [*failed, job("on-failure", 1, OK), job("on-exit", 1, OK)], T0)
    assert end.status.phase is WorkflowRunPhase.FAILED
    assert end.status.conditions[0].message == "step a failed: boom"


def test_a_failing_on_success_or_on_exit_step_fails_the_run() -> None:
    for hook in ("onSuccess", "onExit"):
        spec = workflow(step("a"), **{hook: step("hook")})
        run, _ = started(spec)
        first = decide(run, spec, [job("a", 1, OK)], T0)
        assert [s.step.name for s in first.start] == ["hook"]
        end = decide(after(run, first), spec, [job("a", 1, OK), job("hook", 1, FAILED)], T0)
        assert end.status.phase is WorkflowRunPhase.FAILED, hook
        assert end.status.conditions[0].message.startswith("step hook failed")


def test_hooks_need_names_of_their_own() -> None:
    with pytest.raises(ValueError, match=r"onExit\.name: 'x' is another step's name"):
        workflow(step("a"), onSuccess=step("x"), onExit=step("x"))


# --- parent rules --------------------------------------------------------------------------
def test_all_done_runs_after_a_failed_parent_with_the_outputs_that_exist() -> None:
    spec = workflow(step("a"), step("b"), step("join", "a", "b", parentRule="AllDone"))
    run, _ = started(spec)
    attempts = [job("a", 1, FAILED, message="boom"), job("b", 1, OK)]
    decision = decide(run, spec, attempts, T0)
    (start,) = decision.start
    assert start.step.name == "join" and start.parents == {"b": output("b", 1)}


def test_all_done_waits_for_every_parent() -> None:
    spec = workflow(step("a"), step("b"), step("join", "a", "b", parentRule="AllDone"))
    run, _ = started(spec)
    decision = decide(run, spec, [job("a", 1, FAILED), job("b", 1, AttemptState.ACTIVE)], T0)
    assert decision.start == [] and phases(decision)["join"] is StepPhase.PENDING


def test_any_succeeded_is_skipped_when_no_parent_succeeded() -> None:
    spec = workflow(step("a"), step("b"), step("join", "a", "b", parentRule="AnySucceeded"))
    run, _ = started(spec)
    decision = decide(run, spec, [job("a", 1, FAILED), job("b", 1, FAILED)], T0)
    assert phases(decision)["join"] is StepPhase.SKIPPED
    assert "no parent succeeded" in (decision.status.steps["join"].message or "")
    assert decision.status.phase is WorkflowRunPhase.FAILED


def test_the_default_rule_skips_a_child_of_a_failed_parent_at_once() -> None:
    spec = workflow(step("a"), step("b"), step("c", "a", "b"))
    run, _ = started(spec)
    decision = decide(run, spec, [job("a", 1, FAILED), job("b", 1, AttemptState.ACTIVE)], T0)
    assert decision.status.steps["c"].message == "not run: parent a failed"


# --- conditions ----------------------------------------------------------------------------
BRANCHES = workflow(
    step("check"),
    step("big", "check", skipIf="parents.check.amount <= 100"),
    step("small", "check", runIf="parents.check.amount <= 100"),
    step("after-big", "big"),
    step("join", "big", "small", parentRule="AnySucceeded"),
)


def test_a_condition_skips_its_branch_and_the_join_still_runs() -> None:
    run, _ = started(BRANCHES)
    done = [job("check", 1, OK)]
    waiting = decide(run, BRANCHES, done, T0)
    # check's output is not read yet: the conditions wait for the next pass, which reads it.
    assert waiting.start == [] and waiting.wake_at == T0
    run = after(run, waiting)
    assert needs_outputs(BRANCHES.steps[1], run.status.steps) == ["check"]
    decision = decide(run, BRANCHES, done, T0, outputs={"check": {"amount": 50}})
    assert [s.step.name for s in decision.start] == ["small"]
    big = decision.status.steps["big"]
    assert big.phase is StepPhase.SKIPPED
    assert big.message == "skipped: skipIf 'parents.check.amount <= 100' was true"
    assert decision.status.steps["after-big"].message == "not run: parent big skipped"
    run = after(run, decision)
    end = decide(run, BRANCHES, [*done, job("small", 1, OK)], T0)
    assert [s.step.name for s in end.start] == ["join"]
    run = after(run, end)
    final = decide(run, BRANCHES, [*done, job("small", 1, OK), job("join", 1, OK)], T0)
    assert final.status.phase is WorkflowRunPhase.SUCCEEDED


def test_a_run_if_that_is_false_skips_the_step_with_the_expression() -> None:
    spec = workflow(step("a", runIf="input.go"))
    run, first = started(spec, input={"go": False})
    assert run.status.steps["a"].phase is StepPhase.SKIPPED
    assert run.status.steps["a"].message == "skipped: runIf 'input.go' was false"
    assert first.status.phase is WorkflowRunPhase.SUCCEEDED
    run, first = started(spec, input={"go": True})
    assert [s.step.name for s in first.start] == ["a"]


def test_a_condition_that_fails_fails_the_step_and_the_run() -> None:
    spec = workflow(step("a", skipIf="input.missing.field"))
    run, first = started(spec)
    assert run.status.steps["a"].phase is StepPhase.FAILED
    assert "condition failed: skipIf 'input.missing.field' failed" in (
        run.status.steps["a"].message or ""
    )
    assert first.status.phase is WorkflowRunPhase.FAILED


def test_a_condition_that_cannot_read_a_parent_output_says_why() -> None:
    spec = workflow(step("a"), step("b", "a", skipIf="parents.a.x"))
    run, _ = started(spec)
    run = after(run, decide(run, spec, [job("a", 1, OK)], T0))
    decision = decide(run, spec, [job("a", 1, OK)], T0, outputs={"a": Unreadable("it is 9 MiB")})
    b = decision.status.steps["b"]
    assert b.phase is StepPhase.FAILED
    assert "cannot read the output of parent a: it is 9 MiB" in (b.message or "")


def test_a_condition_gives_a_boolean_or_fails() -> None:
    spec = workflow(step("a", runIf="input.n"))
    run, _ = started(spec, input={"n": 3})
    assert "gave 3, not true or false" in (run.status.steps["a"].message or "")


# --- a step that cancels itself -----------------------------------------------------------
def test_a_step_that_cancels_itself_ends_cancelled_and_failed_outranks_it() -> None:
    """Hatchet's run-details case: a failing step and a self-cancelling one beside two
    succeeding branches."""
    spec = workflow(
        step("fail", retries=2),
        step("cancel", retries=2),
        step("left"),
        step("right"),
        step("after-cancel", "cancel"),
    )
    run, _ = started(spec)
    attempts = [
        job("fail", 1, FAILED, message="boom", permanent=True),
        job("cancel", 1, FAILED, message="cancelled by the step itself", cancelled=True),
        job("left", 1, OK),
        job("right", 1, OK),
    ]
    decision = decide(run, spec, attempts, T0)
    assert phases(decision) == {
        "fail": StepPhase.FAILED,
        "cancel": StepPhase.CANCELLED,
        "left": StepPhase.SUCCEEDED,
        "right": StepPhase.SUCCEEDED,
        "after-cancel": StepPhase.SKIPPED,
    }
    assert decision.start == []  # a cancelled step is not retried
    assert decision.status.phase is WorkflowRunPhase.FAILED
    alone = decide(run, spec, [a for a in attempts if a.step != "fail"], T0)
    assert alone.status.phase is WorkflowRunPhase.RUNNING  # fail is still running
    spec2 = workflow(step("cancel"), step("left"), onSuccess=step("yay"), onExit=step("bye"))
    run2, _ = started(spec2)
    cancelled = [job("cancel", 1, FAILED, message="by me", cancelled=True), job("left", 1, OK)]
    hooks = decide(run2, spec2, cancelled, T0)
    assert hooks.status.steps["yay"].message == "not run: a step was cancelled"
    end = decide(after(run2, hooks), spec2, [*cancelled, job("bye", 1, OK)], T0)
    assert end.status.phase is WorkflowRunPhase.CANCELLED
    condition = end.status.conditions[0]
    assert (condition.reason, condition.message) == (
        "StepCancelled",
        "step cancel was cancelled: by me",
    )


# --- suspending a run ------------------------------------------------------------------------
def test_a_suspended_run_starts_nothing_new_and_resumes_where_it_was() -> None:
    spec = workflow(step("a"), step("b", "a"), step("c", retries=1))
    run, _ = started(spec)
    held = Run(run.name, 2, run.spec.model_copy(update={"suspend": True}), run.status)
    attempts = [job("a", 1, OK), job("c", 1, FAILED, message="x", finished_at=T0)]
    later = T0.replace(minute=5)
    decision = decide(held, spec, attempts, later)
    assert decision.start == [] and decision.wake_at is None
    assert decision.status.steps["b"].phase is StepPhase.PENDING
    assert (
        decision.status.steps["b"].message == "waiting: the run is suspended (kubehatch resume RUN)"
    )
    assert decision.status.steps["c"].phase is StepPhase.RETRYING
    condition = decision.status.conditions[0]
    assert decision.status.phase is WorkflowRunPhase.RUNNING
    assert condition.reason == "Suspended"
    resumed = Run(run.name, 3, run.spec, decision.status)
    again = decide(resumed, spec, attempts, later)
    assert sorted((s.step.name, s.attempt) for s in again.start) == [("b", 1), ("c", 2)]


def test_with_fail_fast_a_hook_whose_pod_never_starts_is_stopped_and_retried() -> None:
    spec = workflow(step("a"), onFailure=step("hook", retries=1), failFast=True)
    run, _ = started(spec)
    run = after(run, decide(run, spec, [job("a", 1, FAILED, message="x")], T0))
    stuck = job("hook", 1, AttemptState.ACTIVE, started_at=T0)
    later = T0.replace(minute=11)
    decision = decide(run, spec, [job("a", 1, FAILED, message="x"), stuck], later)
    assert stuck.job_name in decision.stop_jobs
