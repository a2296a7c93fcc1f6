"""Workflows of the queue-control tests (tests/e2e/test_queue_controls.py).

Hatchet's concurrency examples, ported: one workflow per strategy (or limit, or rate
limit), all with the same single step. The step sleeps ``input.sleep`` seconds (so that
runs overlap, or visibly do not) and returns when it started and ended (the pod's clock,
which is the node's), with the run's name and key, so that the tests can lay the runs
out in time.
"""

from __future__ import annotations

import time
from typing import Any

from kubehatch import Concurrency, Context, Fn, LimitStrategy, RateLimit, Worker, WorkflowJob

WORKER_REF = "tests.e2e.workers.queues:worker"
"""What the Workflows' spec.worker names (the e2e image's default worker is another one)."""

# The tests replace the image with the one they built for this session.
worker = Worker("queues", image="localhost/kubehatch/e2e:placeholder")


def work(ctx: Context) -> dict[str, Any]:
    data = ctx.workflow_input()
    start = time.time()
    time.sleep(float(data.get("sleep", 3)))
    return {
        "run": ctx.run_name,
        "group": data.get("group"),
        "start": start,
        "end": time.time(),
    }


def _limited(name: str, concurrency: Concurrency, **options: Any) -> None:
    worker.register_workflow(
        WorkflowJob(
            name=name, concurrency=concurrency, steps=[Fn(work).set_name("work")], **options
        )
    )


def _by_group() -> Concurrency:
    return Concurrency.expression("input.group")


# Hatchet's default: the newest run of a key wins, the one in progress is cancelled.
_limited("q-cancel-in-progress", _by_group().max_runs(1))

# The running run wins; new runs over the limit are cancelled.
_limited("q-cancel-newest", _by_group().max_runs(1).limit_strategy(LimitStrategy.CANCEL_NEWEST))

# One run per key at a time, keys side by side.
_limited("q-round-robin", _by_group().max_runs(1).limit_strategy(LimitStrategy.GROUP_ROUND_ROBIN))

# Two runs at a time across all keys, handed to the keys in turn.
_limited(
    "q-round-robin-total",
    _by_group().max_runs(5).max_runs_total(2).limit_strategy(LimitStrategy.GROUP_ROUND_ROBIN),
)

# A limit per user that depends on the user's tier (the newest run of a key sets it).
_limited(
    "q-dynamic",
    Concurrency.expression("input.user")
    .max_runs("input.tier == 'premium' ? 2 : 1")
    .limit_strategy(LimitStrategy.QUEUE_NEWEST),
)

# Debounce: of the runs waiting for a key, only the newest (or the oldest) is kept.
_limited(
    "q-debounce-newest",
    _by_group().max_runs(1).limit_strategy(LimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST),
)
_limited(
    "q-debounce-oldest",
    _by_group().max_runs(1).limit_strategy(LimitStrategy.CANCEL_QUEUED_EXCEPT_OLDEST),
)

# Queued runs start by priority (3 first), then in arrival order.
_limited(
    "q-priority",
    _by_group().max_runs(1).limit_strategy(LimitStrategy.QUEUE_NEWEST),
    default_priority=1,
)

# A run that waits longer than the queue timeout is cancelled.
_limited(
    "q-queue-timeout",
    _by_group().max_runs(1).limit_strategy(LimitStrategy.QUEUE_NEWEST).queue_timeout("15s"),
)


# Workflows that name one shared limit count their runs of a key together. The limits must
# agree: q-shared-odd's differs (two runs per key), so beside the others all their runs wait.
def _per_user(runs: int) -> Concurrency:
    return _by_group().max_runs(runs).limit_strategy(LimitStrategy.QUEUE_NEWEST).shared("per-user")


_limited("q-shared-a", _per_user(1))
_limited("q-shared-b", _per_user(1))
_limited("q-shared-odd", _per_user(2))


def _rate_limited(name: str, limit: RateLimit) -> None:
    worker.register_workflow(
        WorkflowJob(name=name, steps=[Fn(work).set_name("work").add_rate_limit(limit)])
    )


# Every attempt of the step takes a unit: two per ten seconds in the namespace.
_rate_limited("q-rate", RateLimit("e2e-api", limit=2, per="10s"))

# One unit per ten seconds per group: the groups do not wait for each other.
_rate_limited("q-rate-dynamic", RateLimit(dynamic_key="input.group", limit=1, per="10s"))
