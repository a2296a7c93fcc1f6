"""The kubehatch.dev/v1alpha1 API: models for Workflow, WorkflowRun, WorkflowEvent and
WorkflowApproval.

These pydantic models are the single source of truth: the CRDs in ``crds/`` are
generated from them (``python -m kubehatch.api.crdgen crds``), the SDK renders them
and the operator reads and writes them. Python attributes are snake_case; the wire
form (``to_dict()``, ``to_manifest()``) is camelCase without ``None`` values.

The names below are defined in the modules of this package and load on first use (PEP 562):
``from kubehatch.api import wire``, all a step pod needs, loads neither pydantic nor the
models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kubehatch.api.wire import (
    API_VERSION,
    GROUP,
    VERSION,
    WORKFLOW_EVENTS,
    WORKFLOW_RUNS,
    WORKFLOWS,
)

if TYPE_CHECKING:
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
    from kubehatch.api.graph import (
        FieldProblem,
        format_path,
        step_graph_problems,
        topological_order,
    )
    from kubehatch.api.resource import PrinterColumn, Resource, ResourceInfo
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
    from kubehatch.api.workflowapproval import WorkflowApproval, WorkflowApprovalSpec
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

    RESOURCES: tuple[type[Resource], ...]

_MODULES: dict[str, tuple[str, ...]] = {
    "kubehatch.api.cel": ("concurrency_key",),
    "kubehatch.api.common": (
        "ApiModel",
        "Condition",
        "ConditionStatus",
        "StatusModel",
        "find_condition",
        "set_condition",
    ),
    "kubehatch.api.container": ("EnvVar", "EnvVarSource", "KeySelector", "ResourceRequirements"),
    "kubehatch.api.fields": ("CronSchedule", "DnsLabel", "Duration", "PoolName"),
    "kubehatch.api.graph": (
        "FieldProblem",
        "format_path",
        "step_graph_problems",
        "topological_order",
    ),
    "kubehatch.api.resource": ("PrinterColumn", "Resource", "ResourceInfo"),
    "kubehatch.api.workflow": (
        "Backoff",
        "ConcurrencySpec",
        "LimitStrategy",
        "SpecProblems",
        "StepSpec",
        "Triggers",
        "Workflow",
        "WorkflowSpec",
        "WorkflowStatus",
    ),
    "kubehatch.api.workerpool": ("WorkerPool", "WorkerPoolSpec", "WorkerPoolStatus"),
    "kubehatch.api.workertask": (
        "TaskPhase",
        "TaskReason",
        "WorkerTask",
        "WorkerTaskSpec",
        "WorkerTaskStatus",
    ),
    "kubehatch.api.workflowapproval": ("WorkflowApproval", "WorkflowApprovalSpec"),
    "kubehatch.api.workflowevent": ("WorkflowEvent", "WorkflowEventSpec", "WorkflowEventStatus"),
    "kubehatch.api.workflowrun": (
        "StepPhase",
        "StepStatus",
        "TriggeredBy",
        "TriggerType",
        "WorkflowRef",
        "WorkflowRun",
        "WorkflowRunPhase",
        "WorkflowRunSpec",
        "WorkflowRunStatus",
    ),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
"""Where each public name is defined."""


def _resources() -> tuple[type[Resource], ...]:
    """Every kind, in the order their CRDs are generated (``RESOURCES``)."""
    from kubehatch.api.workerpool import WorkerPool
    from kubehatch.api.workertask import WorkerTask
    from kubehatch.api.workflow import Workflow
    from kubehatch.api.workflowapproval import WorkflowApproval
    from kubehatch.api.workflowevent import WorkflowEvent
    from kubehatch.api.workflowrun import WorkflowRun

    return (Workflow, WorkflowRun, WorkflowEvent, WorkflowApproval, WorkerPool, WorkerTask)


def __getattr__(name: str) -> Any:
    if name == "RESOURCES":
        value: Any = _resources()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'kubehatch.api' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    "WorkflowApproval",
    "WorkflowApprovalSpec",
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
