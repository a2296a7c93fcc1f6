"""Waiting without a pod (see the builder-style module for the story)."""

from typing import Any

from examples import IMAGE
from kubehatch import Approval, Context, Event, Sleep, WaitForEvent, Worker

worker = Worker("waits-worker", image=IMAGE)
wf = worker.workflow(
    "order-lifecycle",
    description="Wait for payment, ship, and refund large orders once a manager approves.",
    on=Event("order:placed"),
)


@wf.step
def place(ctx: Context) -> dict[str, Any]:
    return {"order": ctx.workflow_input()["order_id"]}


paid = wf.add(
    WaitForEvent(
        "order:paid",
        filter="event.data.order_id == input.order_id",
        lookback="5m",
        timeout="1h",
        on_timeout="Continue",
    ).set_name("paid"),
    parents=[place],
)


@wf.step(parents=[paid])
def ship(ctx: Context) -> dict[str, Any]:
    return {"shipped": not ctx.step_output("paid").get("timedOut", False)}


cool_off = wf.add(Sleep("1h").set_name("cool-off"), parents=[paid])
manager_ok = wf.add(
    Approval("Refund this large order?").set_name("manager-ok").set_run_if("input.amount > 1000"),
    parents=[cool_off],
)


@wf.step(parents=[manager_ok])
def refund(ctx: Context) -> dict[str, Any]:
    return {"approved_by": ctx.step_output("manager-ok")["approver"]}
