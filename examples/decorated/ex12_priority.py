"""Priorities and a limit per customer tier (see the builder-style module for the story)."""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, LimitStrategy, Worker

LIMIT = "input.tier == 'premium' ? 3 : 1"


class ReportRequest(BaseModel):
    customer: str
    tier: str


worker = Worker("priority-worker", image=IMAGE)
wf = worker.workflow(
    "generate-report",
    description="Reports per customer: three at once for premium, one for the others.",
    on=Events("report:requested"),
    concurrency=Concurrency.expression("input.customer")
    .max_runs(LIMIT)
    .limit_strategy(LimitStrategy.QUEUE_NEWEST)
    .queue_timeout("10m"),
    default_priority=2,
)


@wf.step
def generate_report(ctx: Context) -> dict[str, str]:
    request = ctx.workflow_input(ReportRequest)
    return {"report": f"{request.customer} ({request.tier})"}
