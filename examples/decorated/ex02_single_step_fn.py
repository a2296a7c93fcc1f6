"""Single-step workflows: a workflow of one step, named as the builder style derives it."""

from examples import IMAGE
from kubehatch import Context, Worker

worker = Worker("single-step-worker", image=IMAGE)
single = worker.workflow("post-user-create")


@single.step(name="post-user-create")
def post_user_create(ctx: Context) -> None:
    print(f"{ctx.workflow_name}: user created")


worker.workflow("ex02-single-step-fn-lambda").step(lambda ctx: {"run": ctx.run_name})
