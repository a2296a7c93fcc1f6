"""Triggers with options: an event filter (CEL over the payload and metadata), and a cron
schedule read in a time zone, daylight-saving changes included."""

from examples import IMAGE
from kubehatch import Context, Cron, Event, Worker

BIG_WEB_ORDERS = "event.data.amount > 100 && event.metadata.source == 'web'"

worker = Worker("filters-worker", image=IMAGE)
orders = worker.workflow(
    "review-big-orders",
    description="Reviews web orders over 100; other orders start no run.",
    on=Event("order:*", filter=BIG_WEB_ORDERS),
)
reports = worker.workflow(
    "paris-morning-report",
    description="At 09:00 Paris time on weekdays, winter and summer.",
    on=Cron("0 9 * * 1-5", timezone="Europe/Paris"),
)


@orders.step
def review(ctx: Context) -> dict[str, str]:
    order = ctx.workflow_input()
    return {"order": str(order.get("id")), "source": ctx.additional_metadata.get("source", "-")}


@reports.step
def morning_report(ctx: Context) -> dict[str, str]:
    return {"report": "sent"}
