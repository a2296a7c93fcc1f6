"""The WorkflowRun kind: one execution of a Workflow, and its per-step progress."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field

from kubehatch.api import wire
from kubehatch.api.common import ApiModel, Conditions, StatusModel, cel_rule, cel_rules
from kubehatch.api.fields import DnsLabel
from kubehatch.api.resource import AGE_COLUMN, PrinterColumn, Resource, ResourceInfo
from kubehatch.api.schema import opaque
from kubehatch.api.workflow import MAX_PRIORITY, MIN_PRIORITY, WorkflowSpec


class WorkflowRunPhase(StrEnum):
    """Where a run is in its life; the last four are final."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    TIMED_OUT = "TimedOut"

    @property
    def finished(self) -> bool:
        """Whether the run can no longer change."""
        return self in _FINISHED_RUN_PHASES


_FINISHED_RUN_PHASES = frozenset(
    {
        WorkflowRunPhase.SUCCEEDED,
        WorkflowRunPhase.FAILED,
        WorkflowRunPhase.CANCELLED,
        WorkflowRunPhase.TIMED_OUT,
    }
)


class StepPhase(StrEnum):
    """Where a step is in its life; the last five are final."""

    PENDING = "Pending"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    CANCELLED = "Cancelled"
    TIMED_OUT = "TimedOut"

    @property
    def finished(self) -> bool:
        """Whether the step can no longer change."""
        return self not in (StepPhase.PENDING, StepPhase.RUNNING, StepPhase.RETRYING)


def _utc_if_naive(value: datetime) -> datetime:
    """A time without a zone is read as UTC (the API server writes only UTC times)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class TriggerType(StrEnum):
    """What created a run."""

    EVENT = "Event"
    CRON = "Cron"
    SCHEDULE = "Schedule"
    MANUAL = "Manual"
    PARENT = "Parent"
    """A child run, spawned by a step of another run (ctx.spawn)."""


class TriggeredBy(ApiModel):
    """The origin of a run, for `kubectl describe` and for auditing."""

    type: TriggerType = Field(
        default=TriggerType.MANUAL, description="Event, Cron, Schedule, Manual or Parent."
    )
    source: str | None = Field(
        default=None,
        max_length=512,
        description="The event (name or key), cron schedule or scheduled time that fired.",
    )


class WorkflowRef(ApiModel):
    """The Workflow to run, in the run's namespace."""

    name: DnsLabel = Field(description="Name of the Workflow.")


class RetryRequest(ApiModel):
    """Run a finished run again from its failed steps (or from a named step), keeping the
    outputs of the steps that succeeded. ``kubehatch retry`` writes it."""

    id: str = Field(
        min_length=1,
        max_length=64,
        description=(
            "New for each retry (kubehatch retry writes the time): a request is carried "
            "out once per id."
        ),
    )
    from_step: DnsLabel | None = Field(
        default=None,
        description=(
            "Run this step and everything after it again, besides the steps that did not "
            "succeed; without it, the steps that failed, were skipped or were stopped."
        ),
    )


class WorkflowRunSpec(ApiModel):
    """A request to run a workflow once with the given input."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel_rule(
                "self.workflowRef == oldSelf.workflowRef",
                "workflowRef cannot change; create a new WorkflowRun instead",
                field_path=".workflowRef",
            ),
            cel_rule(
                "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
                "a cancelled run cannot be resumed; create a new WorkflowRun instead",
                field_path=".cancel",
            ),
        )
    )

    workflow_ref: WorkflowRef = Field(description="The Workflow to run.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="Input of the run, any JSON object."
    )
    triggered_by: TriggeredBy = Field(
        default_factory=TriggeredBy, description="What created this run."
    )
    scheduled_at: Annotated[datetime, AfterValidator(_utc_if_naive)] | None = Field(
        default=None, description="Do not start before this RFC 3339 time."
    )
    cancel: bool = Field(
        default=False,
        description="Set to true to cancel the run: running steps stop, pending ones are skipped.",
    )
    priority: int | None = Field(
        default=None,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description=(
            "1 (low) to 3 (high); queued runs of higher priority start first. Defaults to "
            "the Workflow's defaultPriority, else 1."
        ),
    )
    additional_metadata: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Key-value metadata of the run, readable by concurrency expressions as "
            "additional_metadata."
        ),
    )
    suspend: bool = Field(
        default=False,
        description=(
            "True: no new step (nor retry, nor forEach item) starts; running ones finish. "
            "False again resumes the run. Its timeout still counts."
        ),
    )
    retry: RetryRequest | None = Field(
        default=None,
        description=(
            "Set on a finished run (with the label kubehatch.dev/retry, as kubehatch retry "
            "does) to run it again from its failed steps, with the Workflow as it is now."
        ),
    )


class ItemProgress(StatusModel):
    """How the items of a forEach step are doing: counted, never listed (a run with a
    thousand items stays small; each item's attempts are its Jobs)."""

    total: int = Field(ge=0, description="Items in the list.")
    succeeded: int = Field(default=0, ge=0, description="Items that succeeded.")
    failed: int = Field(default=0, ge=0, description="Items that failed after their retries.")
    running: int = Field(default=0, ge=0, description="Items running or waiting to retry.")


class StepStatus(StatusModel):
    """Progress of one step."""

    phase: StepPhase = Field(default=StepPhase.PENDING, description="Where the step is.")
    attempts: int = Field(default=0, ge=0, description="Attempts started so far.")
    job_name: str | None = Field(default=None, description="The Job running the latest attempt.")
    started_at: datetime | None = Field(default=None, description="Start of the first attempt.")
    finished_at: datetime | None = Field(default=None, description="When the step finished.")
    message: str | None = Field(default=None, description="Why the step is in this phase.")
    output_config_map: str | None = Field(
        default=None, description="ConfigMap holding the step's JSON output."
    )
    next_attempt_at: datetime | None = Field(
        default=None, description="When the next retry starts, while Retrying."
    )
    child_runs: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Child runs the step spawned (ctx.spawn); they carry the labels "
            "kubehatch.dev/parent-run and kubehatch.dev/parent-step."
        ),
    )
    items: ItemProgress | None = Field(
        default=None, description="For a forEach step: its items, counted."
    )
    earlier_attempts: int = Field(
        default=0,
        ge=0,
        description=(
            "Attempts made before the run was last retried (kubehatch retry); the step's "
            "retries count from there, and attempt numbers keep growing."
        ),
    )


class WorkflowRunStatus(StatusModel):
    """Observed progress of the run."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )
    phase: WorkflowRunPhase | None = Field(default=None, description="Where the run is.")
    conditions: Conditions
    started_at: datetime | None = Field(default=None, description="When the first step started.")
    finished_at: datetime | None = Field(default=None, description="When the run finished.")
    duration: str | None = Field(
        default=None,
        max_length=32,
        description="How long the run took, e.g. 1m30s (for `kubectl get`, which cannot subtract).",
    )
    concurrency_key: str | None = Field(
        default=None, description="The run's concurrency group, when the workflow has a limit."
    )
    concurrency_limit: int | None = Field(
        default=None,
        ge=1,
        description="Runs its key may run at once, from concurrency.maxRunsExpression.",
    )
    progress: str | None = Field(
        default=None,
        pattern=r"^[0-9]+/[0-9]+$",
        description="Finished steps out of all steps, e.g. 2/3.",
    )
    steps: dict[str, StepStatus] = Field(
        default_factory=dict,
        description=(
            "Per-step progress keyed by step name. A map rather than a list so that the "
            "operator can merge-patch one step without rewriting (or racing on) the others."
        ),
    )
    workflow_spec: WorkflowSpec | None = Field(
        default=None,
        description=(
            "Copy of the Workflow's spec taken when the run started, so that editing the "
            "Workflow never changes a run in flight (see the Workflow's spec for its fields)."
        ),
        json_schema_extra=opaque(),
    )
    input_config_map: str | None = Field(
        default=None,
        description="ConfigMap holding the input, mounted by the step pods; unset when the "
        "input is small (up to 16 KiB of JSON) and travels in their own annotation instead.",
    )
    retry_id: str | None = Field(
        default=None, max_length=64, description="The spec.retry.id last carried out."
    )
    retried_at: datetime | None = Field(
        default=None, description="When the run was last retried: it queued again from then."
    )
    retries: int | None = Field(
        default=None, ge=1, description="How many times the run was retried."
    )
    arrival: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "The resourceVersion at which the operator first saw the run: with the "
            "creation time, the order of arrival among runs of one workflow (concurrency "
            "queues are served in this order)."
        ),
    )


class WorkflowRun(Resource):
    """One execution of a Workflow."""

    info = ResourceInfo(
        kind="WorkflowRun",
        plural=wire.WORKFLOW_RUNS,
        short_names=("wfr",),
        description="One run of a Workflow, with per-step progress.",
        # The operator watches unfinished runs only; users filter by phase and workflow.
        selectable=(".status.phase", ".spec.workflowRef.name"),
        columns=(
            PrinterColumn("Workflow", "string", ".spec.workflowRef.name"),
            PrinterColumn("Phase", "string", ".status.phase"),
            PrinterColumn("Progress", "string", ".status.progress"),
            PrinterColumn("Duration", "string", ".status.duration"),
            PrinterColumn("Started", "date", ".status.startedAt", priority=1),
            PrinterColumn("Finished", "date", ".status.finishedAt", priority=1),
            PrinterColumn("Trigger", "string", ".spec.triggeredBy.type", priority=1),
            AGE_COLUMN,
        ),
    )

    spec: WorkflowRunSpec = Field(description="What to run.")
    status: WorkflowRunStatus | None = Field(default=None, description="Observed progress.")

    @classmethod
    def of(
        cls,
        workflow: str,
        input: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        namespace: str | None = None,
        triggered_by: TriggeredBy | None = None,
        scheduled_at: datetime | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        priority: int | None = None,
        additional_metadata: dict[str, str] | None = None,
    ) -> WorkflowRun:
        """A new run of ``workflow``: the one way the client, the CLI and triggers make runs.

        Without ``name`` the API server generates one from the workflow's name. The run
        carries the workflow label, so `kubectl get wfr -l kubehatch.dev/workflow=...` finds it.
        """
        metadata: dict[str, Any] = (
            {"name": wire.bounded(name, wire.MAX_OBJECT_NAME)}
            if name
            else {"generateName": f"{wire.bounded(workflow, 57)}-"}
        )
        if namespace:
            metadata["namespace"] = namespace
        metadata["labels"] = {wire.LABEL_WORKFLOW: wire.label_value(workflow), **(labels or {})}
        if annotations:
            metadata["annotations"] = annotations
        spec = WorkflowRunSpec(
            workflow_ref=WorkflowRef(name=workflow),
            input=input or {},
            triggered_by=triggered_by or TriggeredBy(),
            scheduled_at=scheduled_at,
            priority=priority,
            additional_metadata=additional_metadata or {},
        )
        return cls(metadata=metadata, spec=spec)
