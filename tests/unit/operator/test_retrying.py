"""Retrying a finished run (kubehatch retry), decided without a cluster."""

from __future__ import annotations

from kubehatch.api.workflowrun import RetryRequest, StepPhase, WorkflowRunPhase, WorkflowRunSpec
from kubehatch_operator.decisions import decide
from kubehatch_operator.model import AttemptState, Run
from kubehatch_operator.retrying import retried, retry_message
from kubehatch_operator.store import Store
from tests.unit.operator.test_decisions import T0, after, job, name, started, step, workflow

OK, FAILED = AttemptState.SUCCEEDED, AttemptState.FAILED
CHAIN = workflow(step("a"), step("b", "a", retries=1), step("c", "b"), onFailure=step("hook"))


def failed_run() -> tuple[Run, list]:
    """a succeeded; b failed twice (its retry too); c skipped; the hook ran."""
    run, _ = started(CHAIN)
    attempts = [job("a", 1, OK)]
    run = after(run, decide(run, CHAIN, attempts, T0))
    attempts.append(job("b", 1, FAILED, message="boom", finished_at=T0))
    run = after(run, decide(run, CHAIN, attempts, T0))
    later = T0.replace(minute=5)
    run = after(run, decide(run, CHAIN, attempts, later))
    attempts.append(job("b", 2, FAILED, message="boom again"))
    run = after(run, decide(run, CHAIN, attempts, later))
    attempts.append(job("hook", 1, OK))
    run = after(run, decide(run, CHAIN, attempts, later))
    assert run.status.phase is WorkflowRunPhase.FAILED
    return run, attempts


def with_request(run: Run, **request: object) -> Run:
    spec = run.spec.model_copy(update={"retry": RetryRequest.model_validate(request)})
    return Run(run.name, run.generation + 1, spec, run.status)


def test_a_retry_runs_the_failed_steps_again_and_keeps_the_succeeded_ones() -> None:
    run, attempts = failed_run()
    status = retried(with_request(run, id="r1"), RetryRequest(id="r1"))
    assert not isinstance(status, str)
    assert status.phase is WorkflowRunPhase.PENDING and status.workflow_spec is None
    assert status.finished_at is None and status.retry_id == "r1" and status.retries == 1
    assert status.steps["a"] == run.status.steps["a"]
    b = status.steps["b"]
    assert (b.phase, b.attempts, b.earlier_attempts, b.job_name) == (StepPhase.PENDING, 2, 2, None)
    assert status.steps["c"].phase is StepPhase.PENDING
    assert status.steps["hook"].phase is StepPhase.PENDING
    assert retry_message(status) == "retried from its failed steps: b, c to run again"
    # Started again (with the Workflow as it is now): b's attempt 3, with a retry left again.
    again = Run(run.name, run.generation + 1, run.spec, status)
    decision = decide(again, CHAIN, attempts, T0)
    assert [(s.step.name, s.attempt, s.job_name) for s in decision.start] == [
        ("b", 3, name("b", 3))
    ]
    assert decision.status.steps["a"].phase is StepPhase.SUCCEEDED
    again = after(again, decision)
    # The old failed attempts are history: attempt 3 fails, and the step retries once more.
    failing = decide(again, CHAIN, [*attempts, job("b", 3, FAILED, message="x")], T0)
    assert failing.status.steps["b"].phase is StepPhase.RETRYING
    done = decide(again, CHAIN, [*attempts, job("b", 3, OK)], T0)
    assert [s.step.name for s in done.start] == ["c"]


def test_a_retry_from_a_step_runs_it_and_what_follows_again() -> None:
    run, _ = failed_run()
    status = retried(run, RetryRequest(id="r2", fromStep="a"))
    assert not isinstance(status, str)
    assert {n: s.phase for n, s in status.steps.items()} == dict.fromkeys(
        ["a", "b", "c", "hook"], StepPhase.PENDING
    )


def test_retries_that_cannot_be_carried_out_say_why() -> None:
    run, _ = failed_run()
    assert "has no step 'zzz'" in str(retried(run, RetryRequest(id="r", fromStep="zzz")))
    spec = WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}, "cancel": True})
    cancelled = Run(run.name, 2, spec, run.status)
    assert "kubehatch replay" in str(retried(cancelled, RetryRequest(id="r")))
    spec1 = workflow(step("a"))
    ok, _ = started(spec1)
    ok = after(ok, decide(ok, spec1, [job("a", 1, OK)], T0))
    assert ok.status.phase is WorkflowRunPhase.SUCCEEDED
    assert "every step succeeded" in str(retried(ok, RetryRequest(id="r")))
    assert not isinstance(retried(ok, RetryRequest(id="r", fromStep="a")), str)


def test_a_retried_run_comes_back_to_the_store_once_it_is_unfinished_again() -> None:
    store = Store()
    body = {
        "metadata": {"namespace": "ns", "name": "r1", "resourceVersion": "5", "uid": "u"},
        "spec": {"workflowRef": {"name": "wf"}},
        "status": {"phase": "Failed", "finishedAt": "2026-01-01T00:00:00Z"},
    }
    key = store.observe_run(body)
    assert key in store.finished and key not in store.runs
    late = {**body, "metadata": {**body["metadata"], "resourceVersion": "4"}}
    store.observe_run({**late, "status": {"phase": "Running"}})
    assert key in store.finished  # an older event never brings a finished run back
    newer = {**body, "metadata": {**body["metadata"], "resourceVersion": "9"}}
    store.observe_run({**newer, "status": {"phase": "Pending"}})
    assert key in store.runs and key not in store.finished


def test_a_retried_run_queues_again_as_if_it_arrived_now() -> None:
    run, _ = failed_run()
    now = T0.replace(hour=18)
    status = retried(run, RetryRequest(id="r"), now)
    assert not isinstance(status, str)
    assert status.retried_at == now and status.arrival is None
    assert status.concurrency_key is None and status.concurrency_limit is None
