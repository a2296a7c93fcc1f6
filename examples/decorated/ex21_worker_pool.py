"""Steps on a warm WorkerPool, one step in a Job of its own, in the decorator style.

``pool="fast"`` on the workflow, ``pool=""`` on the step that gets a Job of its own.
"""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Context, Worker


class Order(BaseModel):
    order_id: str
    amount: int


worker = Worker("pool-worker", image=IMAGE)
wf = worker.workflow(
    "orders-on-a-pool",
    description="Order steps on the warm pool 'fast'; the invoice in a Job of its own.",
    pool="fast",
    input_validator=Order,
)


@wf.step(retries=2)
def validate(ctx: Context) -> dict[str, object]:
    order = wf.input(ctx)
    return {"order_id": order.order_id, "valid": order.amount > 0}


@wf.step(parents=[validate])
def price(ctx: Context) -> dict[str, object]:
    checked = ctx.step_output(validate)
    return {"order_id": checked["order_id"], "total": wf.input(ctx).amount * 1.2}


@wf.step(parents=[price], pool="")
def render(ctx: Context) -> dict[str, object]:
    priced = ctx.step_output(price)
    return {"invoice": f"invoice for {priced['order_id']}: {priced['total']:.2f}"}
