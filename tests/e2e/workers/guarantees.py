"""Workflows of the guarantee tests (tests/e2e/test_guarantees.py, `python -m tests.bench.chaos`).

Every step sleeps a little (``input.sleep`` seconds) and returns a value derived from its
parent's value, or from the run's seed for the first step, plus the run and attempt that
computed it. A lost output (a missing parent reads as None and the step fails), an output
of another run, or a step whose output was overwritten by a second execution shows in the
final value or in the ``run`` and ``attempt`` fields.
"""

from __future__ import annotations

import time
from typing import Any

from kubehatch import Backoff, Concurrency, Context, Fn, LimitStrategy, Worker, WorkflowJob

WORKER_REF = "tests.e2e.workers.guarantees:worker"
"""What the Workflows' spec.worker names (the e2e image's default worker is another one)."""

CHAIN_STEPS = ("one", "two", "three")

# The tests replace the image with the one they built for this session.
worker = Worker("guarantees", image="localhost/kubehatch/e2e:placeholder")


def next_value(before: str, step: str) -> str:
    """The value a step computes from its parent's (the tests compute the same)."""
    return f"{before}>{step}"


def expected_values(seed: str) -> dict[str, str]:
    """Every chain step's value for a run with this seed."""
    values, value = {}, seed
    for step in CHAIN_STEPS:
        value = next_value(value, step)
        values[step] = value
    return values


def link(ctx: Context) -> dict[str, Any]:
    data = ctx.workflow_input()
    time.sleep(float(data.get("sleep", 1.0)))
    parents = ctx.parents
    before = ctx.step_output(parents[0])["value"] if parents else str(data["seed"])
    return {
        "value": next_value(before, ctx.step_name),
        "run": ctx.run_name,
        "attempt": ctx.retry_count + 1,
    }


def _chain(retries: int = 0) -> list[Fn]:
    backoff = Backoff(initial="1s", max="2s") if retries else None
    steps: list[Fn] = []
    for name in CHAIN_STEPS:
        step = Fn(link).set_name(name)
        if retries:
            step.set_retries(retries, backoff=backoff)
        if steps:
            step.add_parents(steps[-1])
        steps.append(step)
    return steps


# Three steps in a line; no retries, so a second attempt can only be the operator's doing.
worker.register_workflow(WorkflowJob(name="g-chain", steps=_chain()))

# The same, with retries: for outages that step pods see too (they store their output
# through the API server), where a retried attempt is the expected recovery.
worker.register_workflow(WorkflowJob(name="g-chain-retry", steps=_chain(retries=3)))

# One run per key at a time, the others queued in arrival order.
worker.register_workflow(
    WorkflowJob(
        name="g-limited",
        concurrency=Concurrency.expression("input.key")
        .max_runs(1)
        .limit_strategy(LimitStrategy.QUEUE_NEWEST),
        steps=_chain(),
    )
)
