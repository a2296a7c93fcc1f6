"""The public names are pinned: removing or renaming one must be a deliberate change."""

import pytest

import kubehatch
import kubehatch.api

SDK = {
    "Action", "Approval", "At", "Backoff", "Concurrency", "Context", "Cron", "Crons", "Event",
    "Events", "Sleep", "WaitForEvent", "WaitUntil",
    "Fn", "InputError", "KubehatchError", "LimitStrategy", "Middleware", "Next", "OutputError",
    "PermanentError", "Problem", "RateLimit", "RegistrationError", "ResolvedAction", "Service",
    "StepCancelledError", "StepTimeoutError", "TemporaryError", "Trigger", "UnknownActionError",
    "UnknownParentError", "Worker", "WorkerLoadError", "WorkflowJob", "format_duration",
    "load_worker", "parse_duration", "render_yaml", "run_step", "run_step_async", "to_jsonable",
    "workflow_manifests", "workflow_resources",
}  # fmt: skip

API = {
    "API_VERSION", "GROUP", "RESOURCES", "VERSION", "WORKFLOWS", "WORKFLOW_EVENTS",
    "WORKFLOW_RUNS", "ApiModel", "Backoff", "ConcurrencySpec", "Condition", "ConditionStatus",
    "CronSchedule", "DnsLabel", "Duration", "EnvVar", "EnvVarSource", "FieldProblem",
    "KeySelector", "LimitStrategy",
    "PrinterColumn", "Resource", "ResourceInfo", "ResourceRequirements", "SpecProblems",
    "StatusModel", "StepPhase", "StepSpec", "StepStatus", "TriggerType", "TriggeredBy",
    "Triggers", "Workflow", "WorkflowApproval", "WorkflowApprovalSpec", "WorkflowEvent",
    "WorkflowEventSpec", "WorkflowEventStatus",
    "WorkflowRef", "WorkflowRun", "WorkflowRunPhase", "WorkflowRunSpec", "WorkflowRunStatus",
    "WorkflowSpec", "WorkflowStatus", "concurrency_key", "find_condition", "format_path",
    "set_condition", "step_graph_problems", "topological_order",
}  # fmt: skip


def test_sdk_exports() -> None:
    assert set(kubehatch.__all__) == SDK
    assert all(hasattr(kubehatch, name) for name in SDK)


def test_api_exports() -> None:
    assert set(kubehatch.api.__all__) == API
    assert all(hasattr(kubehatch.api, name) for name in API)


def test_api_identity() -> None:
    assert (kubehatch.api.GROUP, kubehatch.api.VERSION) == ("kubehatch.dev", "v1alpha1")
    assert (
        kubehatch.api.WORKFLOWS,
        kubehatch.api.WORKFLOW_RUNS,
        kubehatch.api.WORKFLOW_EVENTS,
    ) == ("workflows", "workflowruns", "workflowevents")


def test_api_names_load_on_first_use() -> None:
    from kubehatch.api.workflow import Workflow
    from kubehatch.api.workflowapproval import WorkflowApproval
    from kubehatch.api.workflowevent import WorkflowEvent
    from kubehatch.api.workflowrun import WorkflowRun

    resources = kubehatch.api.RESOURCES
    from kubehatch.api.workerpool import WorkerPool
    from kubehatch.api.workertask import WorkerTask

    assert resources == (
        Workflow,
        WorkflowRun,
        WorkflowEvent,
        WorkflowApproval,
        WorkerPool,
        WorkerTask,
    )
    assert kubehatch.api.Workflow is Workflow
    assert set(dir(kubehatch.api)) >= API
    with pytest.raises(AttributeError, match=r"module 'kubehatch\.api' has no attribute 'Nope'"):
        _ = kubehatch.api.Nope  # type: ignore[attr-defined]
