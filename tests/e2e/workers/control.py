"""Workflows for control flow on the cluster: hook steps, conditions, retrying a run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kubehatch import Context, Fn, Sleep, WaitForEvent, Worker, WorkflowJob

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


# --- retry: a -> flaky -> c; flaky fails until it runs in the image with the fix -----------
def first(ctx: Context) -> dict[str, Any]:
    return {"value": 1}


def flaky(ctx: Context) -> dict[str, Any]:
    if not Path("/app/fixes/flaky").exists():  # the new image has it (images.fixed_image)
        raise RuntimeError("not fixed yet")
    return {"value": ctx.step_output("first")["value"] + 1, "attempt": ctx.retry_count + 1}


def last(ctx: Context) -> dict[str, Any]:
    return {"value": ctx.step_output("flaky")["value"] + 1}


_first = Fn(first)
_flaky = Fn(flaky).add_parents(_first)
worker.register_workflow(
    WorkflowJob(name="retry-me", steps=[_first, _flaky, Fn(last).add_parents(_flaky)])
)


# --- fan-out: one Job per item, at most 5 at once ---------------------------------------------
def numbers(ctx: Context) -> dict[str, Any]:
    return {"ids": list(range(ctx.workflow_input().get("count", 50)))}


def square(ctx: Context) -> dict[str, Any]:
    start = time.time()
    time.sleep(1)
    return {
        "index": ctx.item_index,
        "square": ctx.item * ctx.item,
        "start": start,
        "end": time.time(),
    }


def total(ctx: Context) -> dict[str, Any]:
    return {"sum": sum(out["square"] for out in ctx.step_output("square"))}


_numbers = Fn(numbers)
_square = Fn(square).add_parents(_numbers).set_for_each("parents.numbers.ids", parallelism=5)
worker.register_workflow(
    WorkflowJob(name="fan-out", steps=[_numbers, _square, Fn(total).add_parents(_square)])
)


# --- Hatchet's run details: a failing step, a self-cancelling one, two good branches ------
def fails(ctx: Context) -> None:
    raise ValueError("step1 failed")


def cancels_itself(ctx: Context) -> None:
    ctx.cancel()
    ctx.raise_if_cancelled()


def good(ctx: Context) -> dict[str, Any]:
    return {"branch": ctx.step_name}


worker.register_workflow(
    WorkflowJob(
        name="run-details",
        steps=[
            Fn(fails).set_name("step1").set_retries(1, backoff=None),
            Fn(cancels_itself).set_name("cancel-me").set_retries(2),
            Fn(good).set_name("left"),
            Fn(good).set_name("right"),
            Fn(good).set_name("after-cancel").add_parents("cancel-me"),
        ],
    )
)


# --- waits without a pod: an event, then a sleep ------------------------------------------
def place(ctx: Context) -> dict[str, Any]:
    return {"order": ctx.workflow_input()["id"], "at": time.time()}


def ship(ctx: Context) -> dict[str, Any]:
    paid = ctx.step_output("paid")
    return {"paid_by": paid["data"]["by"], "event": paid["event"], "at": time.time()}


_place = Fn(place)
_paid = (
    WaitForEvent("order:paid", filter="event.data.id == input.id", lookback="2m", timeout="3m")
    .set_name("paid")
    .add_parents(_place)
)
_nap = Sleep("4s").set_name("nap").add_parents(_paid)
worker.register_workflow(
    WorkflowJob(name="waits", steps=[_place, _paid, _nap, Fn(ship).add_parents(_paid, _nap)])
)


# --- a 20 s sleep across an operator restart; a wait that takes its timeout branch ---------
def stamp(ctx: Context) -> dict[str, Any]:
    return {"step": ctx.step_name, "at": time.time()}


def after_wait(ctx: Context) -> dict[str, Any]:
    return {"waited": ctx.step_output("wait"), "at": time.time()}


_before = Fn(stamp).set_name("before")
_long_nap = Sleep("20s").set_name("nap").add_parents(_before)
worker.register_workflow(
    WorkflowJob(
        name="long-nap",
        steps=[_before, _long_nap, Fn(stamp).set_name("after").add_parents(_long_nap)],
    )
)
_never = WaitForEvent("never:comes", timeout="5s", on_timeout="Continue").set_name("wait")
worker.register_workflow(
    WorkflowJob(name="wait-or-go", steps=[_never, Fn(after_wait).add_parents(_never)])
)


# --- suspend and resume: a slow first step, then two more -----------------------------------
def slow(ctx: Context) -> dict[str, Any]:
    time.sleep(6)
    return {"at": time.time()}


_slow = Fn(slow)
_second = Fn(stamp).set_name("second").add_parents(_slow)
worker.register_workflow(
    WorkflowJob(
        name="pausable",
        steps=[_slow, _second, Fn(stamp).set_name("third").add_parents(_second)],
    )
)
