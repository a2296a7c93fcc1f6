"""Hooks and conditions (see the builder-style module for the story)."""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Event, Worker

worker = Worker("control-flow-worker", image=IMAGE)
wf = worker.workflow(
    "refund-order",
    description="Refund large orders, note the others; report failures, clean up.",
    on=Event("order:returned"),
)


@wf.step
def check(ctx: Context) -> dict[str, Any]:
    return {"amount": ctx.workflow_input()["amount"]}


@wf.step(parents=[check], skip_if="parents.check.amount <= 100")
def refund(ctx: Context) -> dict[str, Any]:
    return {"refunded": ctx.step_output(check)["amount"]}


@wf.step(parents=[check], run_if="parents.check.amount <= 100")
def note(ctx: Context) -> dict[str, Any]:
    return {"noted": True}


@wf.step(parents=[refund, note], parent_rule="AnySucceeded")
def notify(ctx: Context) -> dict[str, Any]:
    return {"after": list(ctx.parents)}


def report(ctx: Context) -> dict[str, Any]:
    return {"errors": ctx.step_run_errors()}


wf.on_failure(name="on-failure")(report)
wf.on_success(name="on-success")(report)
wf.on_exit(name="cleanup")(report)
