"""Priorities and a limit per customer tier.

Runs of ``generate-report`` have priority 2 unless they set one: ``kubehatch run
generate-report --priority 3`` or ``Client().run("generate-report", ..., priority=3)``
starts ahead of the queued runs of its customer, a priority 1 run after them. Premium
customers get three reports at once, the others one: the newest run of a customer sets
its limit, recorded in the run's status.concurrencyLimit. A run that waits more than ten
minutes for a slot is cancelled (reason QueueTimeout).
"""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, Fn, LimitStrategy, Worker, WorkflowJob
from kubehatch.api.cel import concurrency_limit
from kubehatch.testing import concurrency_key, run_workflow

LIMIT = "input.tier == 'premium' ? 3 : 1"


class ReportRequest(BaseModel):
    customer: str
    tier: str


def generate_report(ctx: Context) -> dict[str, str]:
    request = ctx.workflow_input(ReportRequest)
    return {"report": f"{request.customer} ({request.tier})"}


worker = Worker("priority-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="generate-report",
        description="Reports per customer: three at once for premium, one for the others.",
        on=Events("report:requested"),
        concurrency=Concurrency.expression("input.customer")
        .max_runs(LIMIT)
        .limit_strategy(LimitStrategy.QUEUE_NEWEST)
        .queue_timeout("10m"),
        default_priority=2,
        steps=[Fn(generate_report)],
    )
)

if __name__ == "__main__":
    for request in ({"customer": "acme", "tier": "premium"}, {"customer": "bob", "tier": "free"}):
        print(
            concurrency_key(worker, "generate-report", request),
            concurrency_limit(LIMIT, request),
            run_workflow(worker, "generate-report", request).outputs,
        )
