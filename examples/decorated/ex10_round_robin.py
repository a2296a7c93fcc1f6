"""Tenants take turns: two runs at once in all, one per tenant (``GroupRoundRobin``)."""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, LimitStrategy, Worker


class TenantJob(BaseModel):
    tenant: str
    job_id: int


worker = Worker("round-robin-worker", image=IMAGE)
wf = worker.workflow(
    "tenant-round-robin",
    description="Two runs at once in all, one per tenant; free slots go to tenants in turn.",
    on=Events("tenant:job"),
    concurrency=Concurrency.expression("input.tenant")
    .max_runs(1)
    .max_runs_total(2)
    .limit_strategy(LimitStrategy.GROUP_ROUND_ROBIN),
)


@wf.step
def process(ctx: Context) -> dict[str, str | int]:
    job = ctx.workflow_input(TenantJob)
    return {"tenant": job.tenant, "processed": job.job_id}
