"""The WorkflowRun a trigger creates, and the labels that say which trigger it was.

Every trigger names its runs deterministically (from the event's uid, the scheduled
time, ...), so creating a run twice is a 409 Conflict and never a second run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubehatch.api import wire
from kubehatch.api.workflowrun import TriggeredBy, TriggerType, WorkflowRun


def trigger_run(
    *,
    namespace: str,
    name: str,
    workflow: str,
    trigger_type: TriggerType,
    trigger: str,
    source: str,
    input: dict[str, Any] | None = None,
    scheduled_at: datetime | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    additional_metadata: dict[str, str] | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    """A WorkflowRun manifest, labelled with its trigger's type and annotated with its entry."""
    return WorkflowRun.of(
        workflow,
        input,
        name=name,
        namespace=namespace,
        triggered_by=TriggeredBy(type=trigger_type, source=source[:512]),
        scheduled_at=scheduled_at,
        labels={wire.LABEL_TRIGGER_TYPE: trigger_type.value.lower(), **(labels or {})},
        annotations={wire.ANNOTATION_TRIGGER: trigger, **(annotations or {})},
        additional_metadata=additional_metadata,
        priority=priority,
    ).to_manifest()
