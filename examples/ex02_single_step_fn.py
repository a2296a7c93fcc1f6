"""Single-step workflows: a lone ``Fn`` is a workflow; name it, or let one be derived.

Without ``set_name`` the name comes from the module and the function (see
``kubehatch.Fn.name``): the lambda below becomes ``ex02-single-step-fn-lambda``.
"""

from examples import IMAGE
from kubehatch import Context, Fn, Worker
from kubehatch.testing import run_workflow


def post_user_create(ctx: Context) -> None:
    print(f"{ctx.workflow_name}: user created")


worker = Worker("single-step-worker", image=IMAGE)
worker.register_workflow(Fn(post_user_create).set_name("post-user-create"))
worker.register_workflow(Fn(lambda ctx: {"run": ctx.run_name}))

if __name__ == "__main__":
    print(run_workflow(worker, "post-user-create").outputs)
    print(run_workflow(worker, "ex02-single-step-fn-lambda").outputs)
