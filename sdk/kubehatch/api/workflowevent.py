"""The WorkflowEvent kind: an event that starts every workflow listening for its key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from kubehatch.api import wire
from kubehatch.api.common import ApiModel, Conditions, StatusModel
from kubehatch.api.fields import EventKey
from kubehatch.api.queueing import MAX_PRIORITY, MIN_PRIORITY
from kubehatch.api.resource import AGE_COLUMN, PrinterColumn, Resource, ResourceInfo


class WorkflowEventSpec(ApiModel):
    """An event: its key selects the workflows, its payload becomes their input."""

    key: EventKey = Field(
        description="Event key matched against spec.triggers.events, e.g. user:created."
    )
    payload: dict[str, Any] = Field(
        default_factory=dict, description="Event data, any JSON object; the input of the runs."
    )
    additional_metadata: dict[str, str] = Field(
        default_factory=dict, description="Free-form string metadata, copied onto the runs."
    )
    priority: int | None = Field(
        default=None,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description="Priority of the runs it starts (1 low to 3 high); default the Workflow's.",
    )


class WorkflowEventStatus(StatusModel):
    """What the operator did with the event."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )
    runs: list[str] = Field(
        default_factory=list, description="Names of the WorkflowRuns the event created."
    )
    handled_at: datetime | None = Field(default=None, description="When the runs were created.")
    conditions: Conditions


class WorkflowEvent(Resource):
    """An event pushed to the cluster (``kubehatch event`` or any client)."""

    info = ResourceInfo(
        kind="WorkflowEvent",
        plural=wire.WORKFLOW_EVENTS,
        short_names=("wfe",),
        description="An event that triggers the workflows listening for its key.",
        columns=(
            PrinterColumn("Key", "string", ".spec.key"),
            PrinterColumn("Runs", "string", ".status.runs"),
            PrinterColumn("Handled", "date", ".status.handledAt", priority=1),
            AGE_COLUMN,
        ),
    )

    spec: WorkflowEventSpec = Field(description="The event.")
    status: WorkflowEventStatus | None = Field(default=None, description="What was done with it.")
