"""A service grouping user workflows; the workflow may run for at most 60 seconds."""

from examples import IMAGE
from kubehatch import Context, Event, Worker

worker = Worker("user-worker", image=IMAGE)
user_service = worker.new_service("user")
wf = user_service.workflow(
    "post-user-sign-up",
    description="Workflow that executes after a user signs up.",
    on=Event("user:created"),
    timeout="60s",
)


@wf.step(retries=2, timeout="30s")
def post_sign_up(ctx: Context) -> dict[str, str]:
    return {"status": f"signed up ({ctx.step_name})"}
