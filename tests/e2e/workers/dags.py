"""Workflows that exercise the operator: fan-out and join, failures, timeouts, cancellation.

Each workflow is small and fast: the point is the operator's behaviour, not the work.
"""

from __future__ import annotations

import time
from typing import Any

from kubehatch import Backoff, Concurrency, Context, Fn, LimitStrategy, Next, Worker, WorkflowJob

# The tests replace the image with the one they built for this session.
worker = Worker("e2e", image="localhost/kubehatch/e2e:placeholder")


def _stamp(ctx: Context, **values: Any) -> dict[str, Any]:
    return {"step": ctx.step_name, "at": time.time(), **values}


# --- diamond: a -> (b, c) -> d ------------------------------------------------------------
def a(ctx: Context) -> dict[str, Any]:
    return _stamp(ctx, value=ctx.workflow_input().get("value", 1))


def b(ctx: Context) -> dict[str, Any]:
    start = time.time()
    time.sleep(3)
    return _stamp(ctx, value=ctx.step_output("a")["value"] + 10, start=start)


def c(ctx: Context) -> dict[str, Any]:
    start = time.time()
    time.sleep(3)
    return _stamp(ctx, value=ctx.step_output("a")["value"] + 100, start=start)


def d(ctx: Context) -> dict[str, Any]:
    return _stamp(ctx, total=ctx.step_output("b")["value"] + ctx.step_output("c")["value"])


step_a = Fn(a).set_name("a")
step_b = Fn(b).set_name("b").add_parents(step_a)
step_c = Fn(c).set_name("c").add_parents(step_a)
step_d = Fn(d).set_name("d").add_parents(step_b, step_c)
worker.register_workflow(WorkflowJob(name="diamond", steps=[step_a, step_b, step_c, step_d]))


# --- a step that always fails, with retries -------------------------------------------------
def explode(ctx: Context) -> None:
    raise ValueError(f"boom on attempt {ctx.retry_count + 1}")


def never(ctx: Context) -> None:
    raise AssertionError("a child of a failed step must not run")


fail = Fn(explode).set_name("explode").set_retries(2, backoff=Backoff(initial="1s", max="2s"))
worker.register_workflow(
    WorkflowJob(name="failing", steps=[fail, Fn(never).set_name("child").add_parents(fail)])
)


# --- a failing branch beside one that succeeds: Hatchet's default, and fail_fast ----------
def fail_now(ctx: Context) -> None:
    raise ValueError("step1 failed")


def slow_branch(ctx: Context) -> dict[str, Any]:
    start = time.time()
    time.sleep(4)
    return _stamp(ctx, start=start, value=7)


def after_slow(ctx: Context) -> dict[str, Any]:
    return _stamp(ctx, value=ctx.step_output("slow")["value"] * 2)


def _branches(name: str, fail_fast: bool) -> None:
    boom = Fn(fail_now).set_name("boom")
    slow = Fn(slow_branch).set_name("slow")
    worker.register_workflow(
        WorkflowJob(
            name=name,
            fail_fast=fail_fast,
            steps=[
                boom,
                Fn(never).set_name("after-boom").add_parents(boom),
                slow,
                Fn(after_slow).set_name("after-slow").add_parents(slow),
            ],
        )
    )


_branches("branches", fail_fast=False)
_branches("branches-fail-fast", fail_fast=True)


# --- Hatchet's on-failure example: step1 fails, the on-failure step reads why ----------------
def report_failure(ctx: Context) -> dict[str, Any]:
    return {"errors": ctx.step_run_errors()}


worker.register_workflow(
    WorkflowJob(
        name="on-failure",
        steps=[Fn(fail_now).set_name("step1")],
        on_failure=Fn(report_failure).set_name("on-failure"),
    )
)


# --- timeouts ----------------------------------------------------------------------------
def sleep_long(ctx: Context) -> None:
    time.sleep(120)


worker.register_workflow(
    WorkflowJob(name="step-timeout", steps=[Fn(sleep_long).set_name("slow").set_timeout("3s")])
)
worker.register_workflow(
    WorkflowJob(
        name="run-timeout",
        timeout="6s",
        steps=[Fn(sleep_long).set_name("slow"), Fn(never).set_name("after").add_parents("slow")],
    )
)


# --- cancellation: the step waits for SIGTERM and says so -----------------------------------
def wait_for_cancel(ctx: Context) -> dict[str, Any]:
    cancelled = ctx.wait_for_cancel(timeout=300)
    print(f"cancelled={cancelled}", flush=True)
    return {"cancelled": cancelled}


worker.register_workflow(
    WorkflowJob(name="cancellable", steps=[Fn(wait_for_cancel).set_name("wait")])
)


# --- a key function (run in a pod of its own) decides the concurrency group ----------------
def user_of(ctx: Context) -> str:
    return str(ctx.workflow_input()["user"])


worker.register_workflow(
    WorkflowJob(
        name="keyed",
        concurrency=Concurrency(user_of).max_runs(1).limit_strategy(LimitStrategy.QUEUE_NEWEST),
        steps=[Fn(wait_for_cancel).set_name("wait")],
    )
)


# --- two sequential steps that take a while: the operator is killed in between ---------------
def slow_one(ctx: Context) -> dict[str, Any]:
    time.sleep(4)
    return {"n": 1}


def slow_two(ctx: Context) -> dict[str, Any]:
    time.sleep(4)
    return {"n": ctx.step_output("one")["n"] + 1}


one = Fn(slow_one).set_name("one")
worker.register_workflow(
    WorkflowJob(name="sequential", steps=[one, Fn(slow_two).set_name("two").add_parents(one)])
)


# --- middleware: worker's wraps service's wraps the step ------------------------------------
def worker_mw(ctx: Context, next: Next) -> Any:
    order = [*ctx.value("order", []), "worker"]
    return next(ctx.with_value("order", order))


def service_mw(ctx: Context, next: Next) -> Any:
    order = [*ctx.value("order", []), "service"]
    return next(ctx.with_value("order", order).with_value("testkey", "testvalue"))


def read_values(ctx: Context) -> dict[str, Any]:
    return {"order": [*ctx.value("order", []), "step"], "testkey": ctx.value("testkey")}


worker.use(worker_mw)
mw_service = worker.new_service("mw").use(service_mw)
mw_service.register_workflow(
    WorkflowJob(name="middleware", steps=[Fn(read_values).set_name("read")])
)


# --- the guide's two-step workflow, reused from examples/ -----------------------------------
# Re-registered on this worker so that one image (and one KUBEHATCH_WORKER) serves every e2e
# workflow; the functions are the example's own.
from examples import ex03_two_step  # noqa: E402

worker.register_workflow(
    WorkflowJob(
        name="two-step-workflow",
        steps=[
            Fn(ex03_two_step.first).set_name("step-one"),
            Fn(ex03_two_step.second).set_name("step-two").add_parents("step-one"),
        ],
    )
)


# --- a chain of trivial steps: what benchmarks time is the handoff between them -------------
def link(ctx: Context) -> dict[str, Any]:
    parents = ctx.parents
    return {"depth": (ctx.step_output(parents[0])["depth"] + 1) if parents else 0}


chain_a = Fn(link).set_name("first")
chain_b = Fn(link).set_name("second").add_parents(chain_a)
chain_c = Fn(link).set_name("third").add_parents(chain_b)
worker.register_workflow(WorkflowJob(name="chain", steps=[chain_a, chain_b, chain_c]))
