"""Waiting without a pod: an order waits for its payment, a cooling-off hour, and a
person's approval before a large refund.

``paid`` waits for the event ``order:paid`` whose payload names this order (the filter
reads the event and the run's input), taking one that came up to five minutes before the
wait began; after an hour without it, the run goes on with ``{"timedOut": true}``
(``on_timeout="Continue"``), and ``ship`` decides. ``cool-off`` sleeps an hour. Large
orders need ``kubehatch approve RUN manager-ok`` (or ``--reject``) before ``refund``.
No pod runs while a step waits; a restarted operator picks the wait up where it was.
"""

from typing import Any

from examples import IMAGE
from kubehatch import Approval, Context, Event, Fn, Sleep, WaitForEvent, Worker, WorkflowJob


def place(ctx: Context) -> dict[str, Any]:
    return {"order": ctx.workflow_input()["order_id"]}


def ship(ctx: Context) -> dict[str, Any]:
    paid = ctx.step_output("paid")
    return {"shipped": not paid.get("timedOut", False)}


def refund(ctx: Context) -> dict[str, Any]:
    return {"approved_by": ctx.step_output("manager-ok")["approver"]}


worker = Worker("waits-worker", image=IMAGE)
_place = Fn(place)
_paid = (
    WaitForEvent(
        "order:paid",
        filter="event.data.order_id == input.order_id",
        lookback="5m",
        timeout="1h",
        on_timeout="Continue",
    )
    .set_name("paid")
    .add_parents(_place)
)
_cool_off = Sleep("1h").set_name("cool-off").add_parents(_paid)
_approval = (
    Approval("Refund this large order?")
    .set_name("manager-ok")
    .add_parents(_cool_off)
    .set_run_if("input.amount > 1000")
)
worker.register_workflow(
    WorkflowJob(
        name="order-lifecycle",
        description="Wait for payment, ship, and refund large orders once a manager approves.",
        on=Event("order:placed"),
        steps=[
            _place,
            _paid,
            Fn(ship).add_parents(_paid),
            _cool_off,
            _approval,
            Fn(refund).add_parents(_approval),
        ],
    )
)
