"""The kubehatch.dev/v1alpha1 API: models for Workflow, WorkflowRun and WorkflowEvent.

These pydantic models are the single source of truth: the CRDs in ``crds/`` are
generated from them (``python -m kubehatch.api.crdgen crds``), the SDK renders them
and the operator reads and writes them. Python attributes are snake_case; the wire
form (``to_dict()``, ``to_manifest()``) is camelCase without ``None`` values.
"""

from kubehatch.api.cel import concurrency_key
from kubehatch.api.common import (
    ApiModel,
    Condition,
    ConditionStatus,
    StatusModel,
    find_condition,
    set_condition,
)
from kubehatch.api.container import EnvVar, EnvVarSource, KeySelector, ResourceRequirements
from kubehatch.api.fields import CronSchedule, DnsLabel, Duration
from kubehatch.api.graph import FieldProblem, format_path, step_graph_problems, topological_order
from kubehatch.api.resource import PrinterColumn, Resource, ResourceInfo
from kubehatch.api.wire import API_VERSION, GROUP, VERSION
from kubehatch.api.workflow import (
    Backoff,
    ConcurrencySpec,
    LimitStrategy,
    SpecProblems,
    StepSpec,
    Triggers,
    Workflow,
    WorkflowSpec,
    WorkflowStatus,
)
from kubehatch.api.workflowevent import WorkflowEvent, WorkflowEventSpec, WorkflowEventStatus
from kubehatch.api.workflowrun import (
    StepPhase,
    StepStatus,
    TriggeredBy,
    TriggerType,
    WorkflowRef,
    WorkflowRun,
    WorkflowRunPhase,
    WorkflowRunSpec,
    WorkflowRunStatus,
)

RESOURCES: tuple[type[Resource], ...] = (Workflow, WorkflowRun, WorkflowEvent)
"""Every kind, in the order their CRDs are generated."""

WORKFLOWS = Workflow.info.plural
WORKFLOW_RUNS = WorkflowRun.info.plural
WORKFLOW_EVENTS = WorkflowEvent.info.plural

__all__ = [
    "API_VERSION",
    "GROUP",
    "RESOURCES",
    "VERSION",
    "WORKFLOWS",
    "WORKFLOW_EVENTS",
    "WORKFLOW_RUNS",
    "ApiModel",
    "Backoff",
    "ConcurrencySpec",
    "Condition",
    "ConditionStatus",
    "CronSchedule",
    "DnsLabel",
    "Duration",
    "EnvVar",
    "EnvVarSource",
    "FieldProblem",
    "KeySelector",
    "LimitStrategy",
    "PrinterColumn",
    "Resource",
    "ResourceInfo",
    "ResourceRequirements",
    "SpecProblems",
    "StatusModel",
    "StepPhase",
    "StepSpec",
    "StepStatus",
    "TriggerType",
    "TriggeredBy",
    "Triggers",
    "Workflow",
    "WorkflowEvent",
    "WorkflowEventSpec",
    "WorkflowEventStatus",
    "WorkflowRef",
    "WorkflowRun",
    "WorkflowRunPhase",
    "WorkflowRunSpec",
    "WorkflowRunStatus",
    "WorkflowSpec",
    "WorkflowStatus",
    "concurrency_key",
    "find_condition",
    "format_path",
    "set_condition",
    "step_graph_problems",
    "topological_order",
]
