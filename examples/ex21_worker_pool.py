"""Steps on a warm WorkerPool, one step in a Job of its own: the mode is one field.

``pool="fast"`` on the workflow runs its steps on the WorkerPool ``fast`` (see
``examples/workerpool/``): warm ``kubehatch worker`` pods claim each step and run it in
milliseconds, without a pod per step. ``set_pool("")`` gives ``render`` its own Job: its
own image and resources, e.g. for a heavy or untrusted step. The code is the same either
way; a local run ignores pools.
"""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Context, Fn, Worker, WorkflowJob
from kubehatch.testing import run_workflow


class Order(BaseModel):
    order_id: str
    amount: int


def validate(ctx: Context) -> dict[str, object]:
    order = ctx.workflow_input(Order)
    return {"order_id": order.order_id, "valid": order.amount > 0}


def price(ctx: Context) -> dict[str, object]:
    checked = ctx.step_output("validate")
    return {"order_id": checked["order_id"], "total": ctx.workflow_input(Order).amount * 1.2}


def render(ctx: Context) -> dict[str, object]:
    priced = ctx.step_output("price")
    return {"invoice": f"invoice for {priced['order_id']}: {priced['total']:.2f}"}


validate_step = Fn(validate).set_name("validate").set_retries(2)
price_step = Fn(price).set_name("price").add_parents(validate_step)
render_step = Fn(render).set_name("render").add_parents(price_step).set_pool("")

worker = Worker("pool-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="orders-on-a-pool",
        description="Order steps on the warm pool 'fast'; the invoice in a Job of its own.",
        pool="fast",
        input_validator=Order,
        steps=[validate_step, price_step, render_step],
    )
)

if __name__ == "__main__":
    print(run_workflow(worker, "orders-on-a-pool", {"order_id": "o-1", "amount": 10}).outputs)
