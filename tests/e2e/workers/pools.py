"""Workflows of the worker pool tests (tests/e2e/test_pools.py, the bench's pool row).

The tests put them on a WorkerPool by the manifest's spec.pool (and a step's pool), so
the same module also runs step by step in Jobs: the mode is one field.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from kubehatch import Context, Fn, Worker, WorkflowJob

WORKER_REF = "tests.e2e.workers.pools:worker"

worker = Worker("pools", image="localhost/kubehatch/e2e:placeholder")


def count(ctx: Context) -> dict[str, Any]:
    """One more than its parent's count (the first: the run's input ``start``), and when
    its code started (``t``, the clock of the bench's one node): what the bench times."""
    started = time.time()
    before = ctx.workflow_input().get("start", 0)
    for parent in ctx.parents:
        before = ctx.step_output(parent)["n"]
    return {"n": before + 1, "t": started, "host": os.environ.get("HOSTNAME", "")}


def _chain(length: int) -> list[Fn[Any]]:
    steps: list[Fn[Any]] = []
    for i in range(1, length + 1):
        step = Fn(count).set_name(f"s{i}")
        steps.append(step.add_parents(steps[-1]) if steps else step)
    return steps


def slow_once(ctx: Context) -> dict[str, Any]:
    """Sleeps ``input.sleep`` seconds on its first attempt only: long enough to kill its
    worker in the middle; the attempt that runs again returns at once."""
    if ctx.retry_count == 0:
        print(f"attempt 1 sleeps {ctx.workflow_input().get('sleep', 0)}s", flush=True)
        time.sleep(float(ctx.workflow_input().get("sleep", 0)))
    return {"attempt": ctx.retry_count + 1, "host": os.environ.get("HOSTNAME", "")}


def until_cancelled(ctx: Context) -> dict[str, Any]:
    """Waits for its cancellation (at most two minutes), and says that it saw it."""
    print("waiting for the cancellation", flush=True)
    deadline = time.monotonic() + 120
    while not ctx.is_cancelled() and time.monotonic() < deadline:
        time.sleep(0.05)
    if ctx.is_cancelled():
        print(f"saw the cancellation in run {ctx.run_name}", file=sys.stderr, flush=True)
    return {"cancelled": ctx.is_cancelled()}


worker.register_workflow(WorkflowJob(name="pool-chain", steps=_chain(5)))
worker.register_workflow(WorkflowJob(name="pool-slow", steps=[Fn(slow_once).set_name("slow")]))
worker.register_workflow(
    WorkflowJob(name="pool-cancel", steps=[Fn(until_cancelled).set_name("wait")])
)
