"""Child runs, decorator style: ``spawn`` starts a ``double-item`` run per item, ``sum``
adds up their results (see examples/ex16_child_runs.py)."""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Worker

worker = Worker("child-runs-worker", image=IMAGE)
child = worker.workflow("double-item")


@child.step(name="double")
def double(ctx: Context) -> dict[str, int]:
    return {"value": 2 * ctx.workflow_input()["n"]}


parent = worker.workflow(
    "sum-doubled",
    description="Spawns a child run per item and sums their results.",
    spawns=["double-item"],
)


@parent.step(name="spawn")
def spawn(ctx: Context) -> Any:
    items = ctx.workflow_input().get("items", list(range(10)))
    return ctx.spawn_many("double-item", [{"n": n} for n in items])


@parent.step(name="sum", parents=[spawn])
def total(ctx: Context) -> dict[str, int]:
    return {"total": sum(result["value"] for result in ctx.step_output("spawn"))}
