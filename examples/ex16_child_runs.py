"""Child runs: a step spawns runs of another workflow and the next step uses their results.

Hatchet's fan-out: ``spawn`` starts one ``double-item`` run per item (``ctx.spawn_many``) and
ends; the operator creates the runs (owned by this one, cancelled with it) and keeps the
step Running, without a pod, until they are all done. The step's output is then the list
of the children's results, in order: here each child's result is its one leaf step's
output, ``{"value": n}``. ``sum`` reads it as any parent's output. ``spawns`` lists what
the workflow's steps may start; a step that asks for any other workflow fails.
"""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Fn, Worker, WorkflowJob
from kubehatch.testing import run_workflow


def double(ctx: Context) -> dict[str, int]:
    return {"value": 2 * ctx.workflow_input()["n"]}


def spawn(ctx: Context) -> Any:
    items = ctx.workflow_input().get("items", list(range(10)))
    return ctx.spawn_many("double-item", [{"n": n} for n in items])


def total(ctx: Context) -> dict[str, int]:
    return {"total": sum(result["value"] for result in ctx.step_output("spawn"))}


step_spawn = Fn(spawn).set_name("spawn")

worker = Worker("child-runs-worker", image=IMAGE)
worker.register_workflow(WorkflowJob(name="double-item", steps=[Fn(double).set_name("double")]))
worker.register_workflow(
    WorkflowJob(
        name="sum-doubled",
        description="Spawns a child run per item and sums their results.",
        spawns=["double-item"],
        steps=[step_spawn, Fn(total).set_name("sum").add_parents(step_spawn)],
    )
)

if __name__ == "__main__":
    # In-process, each child runs on its own (the operator runs them as WorkflowRuns).
    print([run_workflow(worker, "double-item", {"n": n}).outputs["double"] for n in range(3)])
