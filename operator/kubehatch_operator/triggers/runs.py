"""The WorkflowRun a trigger creates, and the labels that say which trigger it was.

Every trigger names its runs deterministically (from the event's uid, the scheduled
time, ...), so creating a run twice is a 409 Conflict and never a second run.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from kubehatch.api.common import API_VERSION
from kubehatch_operator import naming
from kubehatch_operator.triggers.model import format_time

LABEL_TRIGGER_TYPE = f"{naming.GROUP}/trigger-type"
"""event, cron or schedule: lets `kubectl get wfr -l kubehatch.dev/trigger-type=cron` work."""
LABEL_EVENT = f"{naming.GROUP}/event"
ANNOTATION_TRIGGER = f"{naming.GROUP}/trigger"
"""The spec entry that fired, as in status.lastTriggered: event:user:*, cron:0 * * * *, at:..."""
ANNOTATION_EVENT_METADATA = f"{naming.GROUP}/event-metadata"

# Run names feed Job names (bounded with a hash) and labels; keep them short and readable.
MAX_RUN_NAME = 253


def digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def trigger_run(
    *,
    namespace: str,
    name: str,
    workflow: str,
    trigger_type: str,
    trigger: str,
    source: str,
    input: dict[str, Any] | None = None,
    scheduled_at: datetime | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A WorkflowRun manifest; ``trigger_type`` is the TriggeredBy type (Event, Cron, ...)."""
    spec: dict[str, Any] = {
        "workflowRef": {"name": workflow},
        "input": input or {},
        "triggeredBy": {"type": trigger_type, "source": source[:512]},
    }
    if scheduled_at is not None:
        spec["scheduledAt"] = format_time(scheduled_at)
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {
            "name": naming.bounded(name, MAX_RUN_NAME),
            "namespace": namespace,
            "labels": {
                naming.LABEL_WORKFLOW: naming.label_value(workflow),
                LABEL_TRIGGER_TYPE: trigger_type.lower(),
                **(labels or {}),
            },
            "annotations": {ANNOTATION_TRIGGER: trigger, **(annotations or {})},
        },
        "spec": spec,
    }
