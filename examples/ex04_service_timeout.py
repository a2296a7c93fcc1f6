"""A service grouping user workflows; the workflow may run for at most 60 seconds."""

from examples import IMAGE
from kubehatch import Context, Event, Fn, Worker, WorkflowJob
from kubehatch.testing import run_workflow


def post_sign_up(ctx: Context) -> dict[str, str]:
    return {"status": f"signed up ({ctx.step_name})"}


worker = Worker("user-worker", image=IMAGE)
user_service = worker.new_service("user")
user_service.register_workflow(
    WorkflowJob(
        name="post-user-sign-up",
        description="Workflow that executes after a user signs up.",
        on=Event("user:created"),
        timeout="60s",
        steps=[Fn(post_sign_up).set_retries(2).set_timeout("30s")],
    )
)

if __name__ == "__main__":
    print(run_workflow(worker, "post-user-sign-up").outputs)
