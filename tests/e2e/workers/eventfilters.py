"""Filtered event triggers and a cron in a time zone, for tests/e2e/test_event_filters.py.

The step returns what it was given: the run's input (the event's data) and its
additional metadata (the event's), as ``ctx.additional_metadata`` shows it in the pod.
"""

from __future__ import annotations

from typing import Any

from kubehatch import Context, Cron, Event, Fn, Worker, WorkflowJob

WORKER_REF = "tests.e2e.workers.eventfilters:worker"
worker = Worker("event-filters", image="localhost/kubehatch/e2e:unused")


def record(ctx: Context) -> dict[str, Any]:
    return {"input": ctx.workflow_input(), "metadata": ctx.additional_metadata}


worker.register_workflow(
    WorkflowJob(
        name="big-web-orders",
        on=Event("order:*", filter="event.data.amount > 100 && event.metadata.source == 'web'"),
        steps=[Fn(record)],
    )
)
worker.register_workflow(WorkflowJob(name="batch", on=Event("batch:item"), steps=[Fn(record)]))
worker.register_workflow(
    WorkflowJob(
        name="office-hours",
        on=Cron("0 9 * * 1-5", timezone="Europe/Paris"),
        steps=[Fn(record)],
    )
)
