"""Triggers with options: an event filter (CEL over the payload and metadata), and a cron
schedule read in a time zone, daylight-saving changes included."""

from examples import IMAGE
from kubehatch import Context, Cron, Event, Fn, Worker, WorkflowJob
from kubehatch.testing import run_workflow

BIG_WEB_ORDERS = "event.data.amount > 100 && event.metadata.source == 'web'"


def review(ctx: Context) -> dict[str, str]:
    order = ctx.workflow_input()
    return {"order": str(order.get("id")), "source": ctx.additional_metadata.get("source", "-")}


def morning_report(ctx: Context) -> dict[str, str]:
    return {"report": "sent"}


worker = Worker("filters-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="review-big-orders",
        description="Reviews web orders over 100; other orders start no run.",
        on=Event("order:*", filter=BIG_WEB_ORDERS),
        steps=[Fn(review)],
    )
)
worker.register_workflow(
    WorkflowJob(
        name="paris-morning-report",
        description="At 09:00 Paris time on weekdays, winter and summer.",
        on=Cron("0 9 * * 1-5", timezone="Europe/Paris"),
        steps=[Fn(morning_report)],
    )
)

if __name__ == "__main__":
    print(run_workflow(worker, "review-big-orders", {"id": 7, "amount": 250}).outputs)
