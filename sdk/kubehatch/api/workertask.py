"""The WorkerTask kind: one step attempt handed to a WorkerPool.

The operator creates it where it would create a Job; the pool's workers watch their
pool's tasks and exactly one claims it: a status write with the task's resourceVersion
as precondition, so a second claim gets 409 Conflict. The claim is a lease: the worker
renews ``status.renewedAt`` every third of ``spec.leaseSeconds``; when it stops (the
worker was SIGKILLed, its node lost), the operator marks the task WorkerLost and runs the
step again as a new attempt. Steps on a pool therefore run at least once, as steps in
Jobs do after a node loss: a step with side effects should be idempotent.

Everything the step needs travels in the task, so a worker reads nothing else: the same
environment a step pod gets (:class:`kubehatch.api.stepenv.StepEnv`), the run's input and
its parents' outputs (JSON text); the worker reports the output back the same way.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from kubehatch.api.common import ApiModel, StatusModel
from kubehatch.api.fields import DnsLabel
from kubehatch.api.resource import AGE_COLUMN, PrinterColumn, Resource, ResourceInfo
from kubehatch.api.wire import WORKER_TASKS
from kubehatch.api.workerpool import DEFAULT_LEASE_SECONDS

MAX_OUTPUT_BYTES = 256 * 1024
"""The most JSON a step on a pool may return: it travels in the task's status (a step
in a Job may return up to 10 MiB; see `kubehatch.api.outputs`)."""
MAX_MESSAGE_BYTES = 4096


class TaskPhase(StrEnum):
    PENDING = "Pending"
    """Waiting for a worker of its pool to claim it."""
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self in (TaskPhase.SUCCEEDED, TaskPhase.FAILED)


class TaskReason(StrEnum):
    """How a finished task ended (the step pod's exit codes, as words)."""

    SUCCEEDED = "Succeeded"
    ERROR = "Error"
    """The step raised: retried while it has retries."""
    PERMANENT = "PermanentError"
    """A retry cannot help (a PermanentError, bad input, an output too large)."""
    SELF_CANCELLED = "SelfCancelled"
    """The step cancelled itself (ctx.cancel())."""
    CANCELLED = "Cancelled"
    """Its worker was told to stop it (the worker pod is shutting down)."""
    TIMED_OUT = "TimedOut"
    WORKER_LOST = "WorkerLost"
    """Its worker stopped renewing the claim: run again as a new attempt."""


class WorkerTaskSpec(ApiModel):
    """One step attempt, with everything its code reads."""

    pool: DnsLabel = Field(description="The WorkerPool (in this namespace) that runs it.")
    env: dict[str, str] = Field(
        description="The step's environment, as a step pod gets it (KUBEHATCH_* variables)."
    )
    input: str = Field(default="{}", description="The run's input, as JSON.")
    parents: dict[str, str] = Field(
        default_factory=dict, description="The parents' outputs, as JSON, by step name."
    )
    lease_seconds: int = Field(
        default=DEFAULT_LEASE_SECONDS,
        ge=3,
        le=600,
        description="How long a claim holds without renewal (the pool's leaseSeconds).",
    )


class WorkerTaskStatus(StatusModel):
    """Who runs the task and how it ended; only its worker and the operator write it."""

    phase: TaskPhase = Field(default=TaskPhase.PENDING, description="Where the task is.")
    worker: str | None = Field(default=None, description="The worker pod that claimed it.")
    claimed_at: datetime | None = Field(default=None, description="When it was claimed.")
    renewed_at: datetime | None = Field(
        default=None, description="The claim's last renewal: it holds leaseSeconds from here."
    )
    finished_at: datetime | None = Field(default=None, description="When it ended.")
    reason: TaskReason | None = Field(default=None, description="How it ended.")
    message: str | None = Field(
        default=None, max_length=MAX_MESSAGE_BYTES, description="Why it failed."
    )
    output: str | None = Field(
        default=None, max_length=MAX_OUTPUT_BYTES, description="The step's output, as JSON."
    )


class WorkerTask(Resource):
    """One step attempt handed to a WorkerPool (the operator creates it)."""

    info = ResourceInfo(
        kind="WorkerTask",
        plural=WORKER_TASKS,
        short_names=("wt",),
        description="One workflow step attempt handed to a WorkerPool's workers.",
        columns=(
            PrinterColumn("Pool", "string", ".spec.pool"),
            PrinterColumn("Phase", "string", ".status.phase"),
            PrinterColumn("Worker", "string", ".status.worker"),
            PrinterColumn("Reason", "string", ".status.reason"),
            AGE_COLUMN,
        ),
        selectable=(".spec.pool",),
    )

    spec: WorkerTaskSpec = Field(description="The attempt.")
    status: WorkerTaskStatus | None = Field(default=None, description="Observed state.")
