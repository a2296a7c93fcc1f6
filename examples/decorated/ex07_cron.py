"""A workflow started every five minutes by a cron schedule."""

from datetime import UTC, datetime

from examples import IMAGE
from kubehatch import Context, Cron, Worker

worker = Worker("cron-worker", image=IMAGE)
wf = worker.workflow(
    "my-cron-job", description="Cron workflow example.", on=Cron("*/5 * * * *"), timeout="60s"
)


@wf.step
def report_time(ctx: Context) -> dict[str, str]:
    return {"triggered_at": datetime.now(UTC).isoformat()}
