"""A workflow started every five minutes by a cron schedule."""

from datetime import UTC, datetime

from examples import IMAGE
from kubehatch import Context, Cron, Fn, Worker, WorkflowJob
from kubehatch.testing import run_workflow


def report_time(ctx: Context) -> dict[str, str]:
    return {"triggered_at": datetime.now(UTC).isoformat()}


worker = Worker("cron-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="my-cron-job",
        description="Cron workflow example.",
        on=Cron("*/5 * * * *"),
        timeout="60s",
        steps=[Fn(report_time)],
    )
)

if __name__ == "__main__":
    print(run_workflow(worker, "my-cron-job").outputs)
