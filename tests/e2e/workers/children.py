"""Workflows of the child-run tests (tests/e2e/test_child_runs.py): Hatchet's fan-out.

A parent step spawns runs of a child workflow (``ctx.spawn_many``) and a next step sums
their results; one parent spawns a workflow its ``spawns`` does not list; one spawns slow
children, for cancellation.
"""

from __future__ import annotations

from typing import Any

from kubehatch import Context, Fn, Worker, WorkflowJob

WORKER_REF = "tests.e2e.workers.children:worker"
"""What the Workflows' spec.worker names (the e2e image's default worker is another one)."""

# The tests replace the image with the one they built for this session.
worker = Worker("children", image="localhost/kubehatch/e2e:placeholder")


# --- the child: returns {"value": i} ----------------------------------------------------------
def value(ctx: Context) -> dict[str, Any]:
    return {"value": ctx.workflow_input()["i"]}


worker.register_workflow(WorkflowJob(name="child-value", steps=[Fn(value).set_name("value")]))


def linger(ctx: Context) -> dict[str, Any]:
    ctx.wait_for_cancel(300)
    return {"cancelled": ctx.is_cancelled()}


worker.register_workflow(WorkflowJob(name="child-slow", steps=[Fn(linger).set_name("linger")]))


# --- the parent: spawn 10 children, sum their results -----------------------------------------
def spawn(ctx: Context) -> Any:
    count = ctx.workflow_input().get("count", 10)
    return ctx.spawn_many("child-value", [{"i": i} for i in range(count)])


def total(ctx: Context) -> dict[str, Any]:
    results = ctx.step_output("spawn")
    return {"total": sum(r["value"] for r in results), "count": len(results)}


def spawn_one(ctx: Context) -> Any:
    return ctx.spawn("child-value", {"i": 42}, key="answer")


def show_one(ctx: Context) -> dict[str, Any]:
    return {"got": ctx.step_output("spawn-one")}


step_spawn = Fn(spawn).set_name("spawn")
step_one = Fn(spawn_one).set_name("spawn-one")
worker.register_workflow(
    WorkflowJob(
        name="fan-out-parent",
        spawns=["child-value"],
        steps=[
            step_spawn,
            Fn(total).set_name("sum").add_parents(step_spawn),
            step_one,
            Fn(show_one).set_name("show-one").add_parents(step_one),
        ],
    )
)


# --- a spawn of a workflow the parent does not list -------------------------------------------
def spawn_unlisted(ctx: Context) -> Any:
    return ctx.spawn("child-slow", {})


worker.register_workflow(
    WorkflowJob(
        name="unlisted-parent",
        spawns=["child-value"],
        steps=[Fn(spawn_unlisted).set_name("spawn")],
    )
)


# --- a spawn from a workflow that declares no spawns ------------------------------------------
worker.register_workflow(
    WorkflowJob(name="no-spawns-parent", steps=[Fn(spawn_one).set_name("spawn")])
)


# --- slow children, for cancellation ----------------------------------------------------------
def spawn_slow(ctx: Context) -> Any:
    return ctx.spawn_many("child-slow", [{}, {}])


worker.register_workflow(
    WorkflowJob(name="slow-parent", spawns=["child-slow"], steps=[Fn(spawn_slow).set_name("spawn")])
)
