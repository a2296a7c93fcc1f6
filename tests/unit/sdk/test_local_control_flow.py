"""The local engine's control flow: hooks in order, conditions, child runs (ctx.spawn).

The phases and messages of parent rules, conditions and hooks are compared with the
operator's in tests/unit/operator/test_local_parity.py; here, what only the local engine
does: the order it runs things in, what steps receive, and child runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubehatch import Context, Fn, KubehatchError, PermanentError, Worker, WorkflowJob
from kubehatch.api import outputs, wire
from kubehatch.testing import FakeClock, StepEvent, run_local, run_workflow


def _value(ctx: Context) -> dict[str, Any]:
    return {"value": ctx.workflow_input()["i"]}


def _double(ctx: Context) -> int:
    return int(ctx.step_output("value")["value"]) * 2


def _fails(ctx: Context) -> None:
    raise PermanentError(f"no {ctx.workflow_input().get('i')}")


def _spawn_three(ctx: Context) -> Any:
    return ctx.spawn_many("child", [{"i": i} for i in range(3)])


def _spawn_one(ctx: Context) -> Any:
    return ctx.spawn("child", {"i": 7}, key="seven")


def _spawn_two_leaves(ctx: Context) -> Any:
    return ctx.spawn("two-leaves", {"i": 2})


def _spawn_failing(ctx: Context) -> Any:
    return ctx.spawn_many("failing", [{"i": 0}, {"i": 1}])


def _sum(ctx: Context) -> int:
    return sum(result["value"] for result in ctx.step_output("spawn"))


def spawner(step: Any, *, spawns: list[str] | None = None, retries: int = 0) -> Worker:
    worker = Worker("w", image="img:1")
    value = Fn(_value).set_name("value")
    worker.register_workflow(WorkflowJob(name="child", steps=[value]))
    worker.register_workflow(WorkflowJob(name="failing", steps=[Fn(_fails).set_name("fails")]))
    leaves: list[Fn[Any]] = [
        value,
        Fn(_double).set_name("double").add_parents(value),
        Fn(_value).set_name("v2"),
    ]
    worker.register_workflow(WorkflowJob(name="two-leaves", steps=leaves))
    first = Fn(step).set_name("spawn").set_retries(retries)
    after = Fn(_sum).set_name("sum").add_parents(first)
    worker.register_workflow(WorkflowJob(name="parent", steps=[first, after], spawns=spawns or []))
    return worker


def test_spawn_many_runs_the_children_here_and_the_output_is_their_results_in_order() -> None:
    events: list[StepEvent] = []
    worker = spawner(_spawn_three, spawns=["child"])
    run = run_local(worker, "parent", clock=FakeClock(), on_event=events.append)
    assert run.succeeded, run.message
    assert run.outputs == {"spawn": [{"value": 0}, {"value": 1}, {"value": 2}], "sum": 3}
    children = run.children["spawn"]
    assert [c.outputs for c in children] == [{"value": {"value": i}} for i in range(3)]
    names = [wire.child_run_name("local", "local", "spawn", str(i)) for i in range(3)]
    assert [e.step for e in events if e.phase == "Succeeded"][:3] == [f"{n}/value" for n in names]
    assert [e.step for e in run.events] == ["spawn", "spawn", "sum", "sum"]  # its own steps


def test_spawn_gives_the_one_childs_result_a_dict_by_leaf_when_it_has_several() -> None:
    one = run_local(spawner(_spawn_one, spawns=["child"]), "parent", run_name="p")
    assert one.outputs["spawn"] == {"value": 7}
    [child] = one.children["spawn"]
    assert child.workflow == "child" and one.phases["sum"] == "Failed"  # sum wants a list
    worker = spawner(_spawn_two_leaves, spawns=["two-leaves"])
    two = run_local(worker, "parent", clock=FakeClock())
    assert two.outputs["spawn"] == {"double": 4, "v2": {"value": 2}}


def test_a_spawn_in_a_workflow_without_spawns_fails_the_step_as_on_a_cluster() -> None:
    run = run_local(spawner(_spawn_three), "parent", clock=FakeClock())
    assert run.phases == {"spawn": "Failed", "sum": "Skipped"} and not run.children
    assert run.messages["spawn"] == (
        "it may not spawn workflow 'child': its Workflow's spec.spawns lists nothing; add "
        "'child' to spec.spawns (WorkflowJob(spawns=[...]) in Python)"
    )
    with pytest.raises(KubehatchError, match="may not spawn workflow 'child'"):
        run_workflow(spawner(_spawn_three), "parent")


def test_an_unlisted_workflow_is_refused_before_any_child_runs() -> None:
    run = run_local(spawner(_spawn_failing, spawns=["child"]), "parent", clock=FakeClock())
    assert run.phases["spawn"] == "Failed" and "lists child; add 'failing'" in run.messages["spawn"]
    assert not run.children


def test_a_failed_child_fails_the_step_which_is_not_retried() -> None:
    calls: list[int] = []

    def spawn(ctx: Context) -> Any:
        calls.append(ctx.retry_count)
        return _spawn_failing(ctx)

    run = run_local(spawner(spawn, spawns=["failing"], retries=2), "parent", clock=FakeClock())
    assert calls == [0] and run.phases == {"spawn": "Failed", "sum": "Skipped"}
    name = wire.child_run_name("local", "local", "spawn", "0")
    assert run.messages["spawn"] == (
        f"child run {name} failed: step fails failed: PermanentError: no 0"
    )
    assert len(run.children["spawn"]) == 1  # the first failure ends the step


def test_a_child_workflow_the_worker_lacks_fails_the_step_saying_so() -> None:
    worker = spawner(_spawn_three, spawns=["child"])
    worker.register_workflow(
        WorkflowJob(name="elsewhere", steps=[Fn(lambda ctx: ctx.spawn("gone")).set_name("s")],
                    spawns=["gone"])
    )  # fmt: skip
    run = run_local(worker, "elsewhere", clock=FakeClock())
    assert "the worker has no workflow 'gone'" in run.messages["s"]


def test_hooks_run_last_on_failure_or_success_then_on_exit() -> None:
    order: list[str] = []

    def hook(name: str) -> Any:
        def run(ctx: Context) -> dict[str, str]:
            order.append(name)
            return ctx.step_run_errors()

        run.__name__ = name.replace("-", "_")
        return Fn(run).set_name(name)

    worker = Worker("w", image="img:1")
    worker.register_workflow(
        WorkflowJob(
            name="hooked", steps=[Fn(_fails).set_name("work"), Fn(_sum).set_name("other")],
            on_exit=hook("on-exit"), on_failure=hook("on-failure"), on_success=hook("on-success"),
        )
    )  # fmt: skip
    run = run_local(worker, "hooked", {"i": 1}, clock=FakeClock())
    assert order == ["on-failure", "on-exit"]
    assert [e.step for e in run.events if e.phase in ("Succeeded", "Skipped")][-3:] == [
        "on-failure", "on-success", "on-exit"
    ]  # fmt: skip
    failures = {"work": "failed: PermanentError: no 1", "other": run.messages["other"]}
    assert run.outputs["on-failure"] == run.outputs["on-exit"] == failures
    assert run.messages["on-success"] == "not run: a step failed"


def test_conditions_read_the_input_metadata_and_only_succeeded_parents() -> None:
    seen: dict[str, Any] = {}

    def look(ctx: Context) -> list[str]:
        seen[ctx.step_name] = {p: ctx.step_output(p) for p in ctx.parents}
        return list(ctx.parents)

    worker = Worker("w", image="img:1")
    ok = Fn(lambda ctx: {"n": 3}).set_name("ok")
    bad = Fn(_fails).set_name("bad")
    worker.register_workflow(
        WorkflowJob(name="cond", steps=[
            ok, bad,
            Fn(look).set_name("any").add_parents(ok, bad).set_parent_rule("AnySucceeded")
            .set_run_if("parents.ok.n == 3 && additional_metadata.env == 'prod'"),
        ])
    )  # fmt: skip
    run = run_local(worker, "cond", clock=FakeClock(), additional_metadata={"env": "prod"})
    assert run.phases == {"ok": "Succeeded", "bad": "Failed", "any": "Succeeded"}
    assert seen == {"any": {"ok": {"n": 3}}}
    skipped = run_local(worker, "cond", clock=FakeClock(), additional_metadata={"env": "dev"})
    assert skipped.messages["any"] == (
        "skipped: runIf \"parents.ok.n == 3 && additional_metadata.env == 'prod'\" was false"
    )


def test_a_condition_over_an_output_the_operator_cannot_read_fails_as_on_a_cluster() -> None:
    worker = Worker("w", image="img:1")
    big = Fn(lambda ctx: "x" * (outputs.MAX_OPERATOR_READ_BYTES + 1)).set_name("big")
    worker.register_workflow(
        WorkflowJob(name="huge", steps=[
            big, Fn(lambda ctx: 1).set_name("check").add_parents(big).set_skip_if("false"),
        ])
    )  # fmt: skip
    run = run_local(worker, "huge", clock=FakeClock())
    message = run.messages["check"]
    assert message.startswith("its condition cannot read the output of parent big: ")
    assert "more than the operator (for conditions over outputs) reads" in message
    assert message.endswith("have big return a small summary")
