"""Tenants take turns: two runs at once in all, one per tenant, free slots handed out in turn.

With ``max_runs_total`` and ``GroupRoundRobin`` a tenant that sends many jobs at once
does not hold the others back. Jobs arriving as acme-1..acme-4, globex-1, globex-2,
initech-1 start as acme-1 and globex-1 (the two slots); if runs finish in the order they
started, the freed slots then go to initech-1, acme-2, globex-2, acme-3, acme-4: tenants in
the order of their names, resuming after the one served last. With ``QueueNewest`` they
go in queue order instead, and initech-1 would start sixth.
"""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, Fn, LimitStrategy, Worker, WorkflowJob
from kubehatch.testing import concurrency_key, run_workflow

TENANTS = ("acme", "globex", "initech")


class TenantJob(BaseModel):
    tenant: str
    job_id: int


def process(ctx: Context) -> dict[str, str | int]:
    job = ctx.workflow_input(TenantJob)
    return {"tenant": job.tenant, "processed": job.job_id}


worker = Worker("round-robin-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="tenant-round-robin",
        description="Two runs at once in all, one per tenant; free slots go to tenants in turn.",
        on=Events("tenant:job"),
        concurrency=Concurrency.expression("input.tenant")
        .max_runs(1)
        .max_runs_total(2)
        .limit_strategy(LimitStrategy.GROUP_ROUND_ROBIN),
        steps=[Fn(process)],
    )
)

if __name__ == "__main__":
    for number, tenant in enumerate(TENANTS, start=1):
        job = {"tenant": tenant, "job_id": number}
        print(
            concurrency_key(worker, "tenant-round-robin", job),
            run_workflow(worker, "tenant-round-robin", job).outputs,
        )
