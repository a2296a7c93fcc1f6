"""A one-step workflow started by the ``user:created`` event."""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Event, Fn, Worker, WorkflowJob
from kubehatch.testing import run_workflow


def greet(ctx: Context) -> dict[str, Any]:
    user = ctx.workflow_input()
    return {"greeting": f"Welcome, {user.get('username', 'stranger')}!"}


worker = Worker("simple-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="simple-workflow",
        description="Simple one-step workflow.",
        on=Event("user:created"),
        steps=[Fn(greet)],
    )
)

if __name__ == "__main__":
    print(run_workflow(worker, "simple-workflow", {"username": "ada"}).outputs)
