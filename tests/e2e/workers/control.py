"""Workflows for control flow on the cluster: hook steps, conditions, retrying a run."""

from __future__ import annotations

import os
from typing import Any

from kubehatch import Context, Fn, Worker, WorkflowJob

# The tests replace the image with the one they built for this session.
worker = Worker("control", image="localhost/kubehatch/e2e:placeholder")
WORKER_REF = f"{__name__}:worker"


# --- hooks: work, then on_failure or on_success, then on_exit ------------------------------
def work(ctx: Context) -> dict[str, Any]:
    if ctx.workflow_input().get("fail"):
        raise ValueError("work failed")
    return {"done": True}


def report(ctx: Context) -> dict[str, Any]:
    return {"errors": ctx.step_run_errors()}


worker.register_workflow(
    WorkflowJob(
        name="hooks",
        steps=[Fn(work)],
        on_failure=Fn(report).set_name("on-failure"),
        on_success=Fn(report).set_name("on-success"),
        on_exit=Fn(report).set_name("on-exit"),
    )
)


# --- conditions: check -> (big | small) -> join ---------------------------------------------
def check(ctx: Context) -> dict[str, Any]:
    return {"amount": ctx.workflow_input()["amount"]}


def branch(ctx: Context) -> dict[str, Any]:
    return {"branch": ctx.step_name}


def join(ctx: Context) -> dict[str, Any]:
    return {"after": sorted(ctx.parents)}


_check = Fn(check)
_big = Fn(branch).set_name("big").add_parents(_check).set_skip_if("parents.check.amount <= 100")
_small = Fn(branch).set_name("small").add_parents(_check).set_run_if("parents.check.amount <= 100")
worker.register_workflow(
    WorkflowJob(
        name="conditions",
        steps=[
            _check,
            _big,
            _small,
            Fn(branch).set_name("after-big").add_parents(_big),
            Fn(join).add_parents(_big, _small).set_parent_rule("AnySucceeded"),
        ],
    )
)


# --- retry: a -> flaky -> c; flaky fails until its Workflow sets FIXED=1 ---------------------
def first(ctx: Context) -> dict[str, Any]:
    return {"value": 1}


def flaky(ctx: Context) -> dict[str, Any]:
    if os.environ.get("FIXED") != "1":
        raise RuntimeError("not fixed yet")
    return {"value": ctx.step_output("first")["value"] + 1, "attempt": ctx.retry_count + 1}


def last(ctx: Context) -> dict[str, Any]:
    return {"value": ctx.step_output("flaky")["value"] + 1}


_first = Fn(first)
_flaky = Fn(flaky).add_parents(_first)
worker.register_workflow(
    WorkflowJob(name="retry-me", steps=[_first, _flaky, Fn(last).add_parents(_flaky)])
)
