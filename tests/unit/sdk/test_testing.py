"""The in-process runner of kubehatch.testing."""

import pytest

from kubehatch import Concurrency, Context, Fn, PermanentError, Worker, WorkflowJob
from kubehatch.testing import concurrency_key, run_workflow


def test_steps_run_in_dependency_order_with_parent_outputs(worker: Worker) -> None:
    order: list[str] = []

    def make(name: str) -> Fn[object]:
        def step(ctx: Context) -> dict[str, object]:
            order.append(name)
            return {"from": name, "saw": sorted(ctx.parents), "input": ctx.workflow_input()}

        return Fn(step).set_name(name)

    d = make("d").add_parents("b", "c")
    b, c = make("b").add_parents("a"), make("c").add_parents("a")
    worker.register_workflow(WorkflowJob(name="diamond", steps=[d, b, c, make("a")]))
    run = run_workflow(worker, "diamond", {"n": 1}, run_name="r1")
    assert order == ["a", "b", "c", "d"]
    assert run.outputs["d"] == {"from": "d", "saw": ["b", "c"], "input": {"n": 1}}
    assert run.attempts == {"a": 1, "b": 1, "c": 1, "d": 1}


def test_failed_steps_are_retried_with_the_retry_count(worker: Worker) -> None:
    seen: list[int] = []

    def flaky(ctx: Context) -> int:
        seen.append(ctx.retry_count)
        if ctx.retry_count < 2:
            raise RuntimeError("not yet")
        return ctx.retry_count

    worker.register_workflow(
        WorkflowJob(name="wf", steps=[Fn(flaky).set_name("flaky").set_retries(2)])
    )
    run = run_workflow(worker, "wf")
    assert (seen, run.outputs, run.attempts) == ([0, 1, 2], {"flaky": 2}, {"flaky": 3})


def test_the_last_error_propagates_with_a_note(worker: Worker) -> None:
    def broken(ctx: Context) -> None:
        raise RuntimeError("broken")

    worker.register_workflow(
        WorkflowJob(name="wf", steps=[Fn(broken).set_name("broken").set_retries(1)])
    )
    with pytest.raises(RuntimeError, match="broken") as caught:
        run_workflow(worker, "wf")
    assert caught.value.__notes__ == ["in step 'broken' of workflow 'wf'"]


def test_permanent_errors_are_not_retried(worker: Worker) -> None:
    calls: list[int] = []

    def refuse(ctx: Context) -> None:
        calls.append(1)
        raise PermanentError("no")

    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(refuse).set_retries(5)]))
    with pytest.raises(PermanentError):
        run_workflow(worker, "wf")
    assert calls == [1]


def test_concurrency_keys(worker: Worker) -> None:
    def user(ctx: Context) -> str:
        return str(ctx.workflow_input()["user"])

    step = Fn(lambda ctx: None).set_name("s")
    worker.register_workflow(WorkflowJob(name="fn", steps=[step], concurrency=Concurrency(user)))
    worker.register_workflow(
        WorkflowJob(name="cel", steps=[step], concurrency=Concurrency.expression("input.user"))
    )
    worker.register_workflow(WorkflowJob(name="none", steps=[step]))
    assert concurrency_key(worker, "fn", {"user": "u1"}) == "u1"
    assert concurrency_key(worker, "cel", {"user": "u2"}) == "u2"
    assert concurrency_key(worker, "none") is None
    with pytest.raises(ValueError, match=r"concurrency expression 'input\.user' failed"):
        concurrency_key(worker, "cel", {})
