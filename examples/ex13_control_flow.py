"""Hooks and conditions: refund an order only when it is large, clean up either way.

``check`` reads the order; ``refund`` runs only when the amount is over 100 (``skipIf``
reads the parent's output, ``parents.check.amount``), ``note`` only when it is not
(``runIf``); ``notify`` joins the two branches and runs when either succeeded
(``parentRule: AnySucceeded``). ``on_failure`` runs when a step failed, with what failed
(``ctx.step_run_errors()``); ``on_success`` when none did; ``on_exit`` runs last, either
way. A step may also end itself with ``ctx.cancel()``: it is Cancelled, not retried.
"""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Event, Fn, Worker, WorkflowJob


def check(ctx: Context) -> dict[str, Any]:
    return {"amount": ctx.workflow_input()["amount"]}


def refund(ctx: Context) -> dict[str, Any]:
    return {"refunded": ctx.step_output("check")["amount"]}


def note(ctx: Context) -> dict[str, Any]:
    return {"noted": True}


def notify(ctx: Context) -> dict[str, Any]:
    return {"after": list(ctx.parents)}


def report(ctx: Context) -> dict[str, Any]:
    return {"errors": ctx.step_run_errors()}


worker = Worker("control-flow-worker", image=IMAGE)
_check = Fn(check)
_refund = Fn(refund).add_parents(_check).set_skip_if("parents.check.amount <= 100")
_note = Fn(note).add_parents(_check).set_run_if("parents.check.amount <= 100")
worker.register_workflow(
    WorkflowJob(
        name="refund-order",
        description="Refund large orders, note the others; report failures, clean up.",
        on=Event("order:returned"),
        steps=[
            _check,
            _refund,
            _note,
            Fn(notify).add_parents(_refund, _note).set_parent_rule("AnySucceeded"),
        ],
        on_failure=Fn(report).set_name("on-failure"),
        on_success=Fn(report).set_name("on-success"),
        on_exit=Fn(report).set_name("cleanup"),
    )
)
