"""A one-step workflow started by the ``user:created`` event."""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Event, Worker

worker = Worker("simple-worker", image=IMAGE)
wf = worker.workflow(
    "simple-workflow", description="Simple one-step workflow.", on=Event("user:created")
)


@wf.step
def greet(ctx: Context) -> dict[str, Any]:
    user = ctx.workflow_input()
    return {"greeting": f"Welcome, {user.get('username', 'stranger')}!"}
