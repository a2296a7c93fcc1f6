"""The WorkerPool kind: warm worker pods that run steps without a pod per step.

A step on a pool is handed over as a WorkerTask (see :mod:`kubehatch.api.workertask`);
one of the pool's ``kubehatch worker`` pods claims it and runs it in a child process
forked from a warm one, so a step starts in milliseconds instead of a pod start. The
operator runs the pool as a Deployment of the same name and keeps its status: how many
workers are ready and how many tasks wait, which an HPA or KEDA can scale on (the
``scale`` subresource makes ``kubectl scale workerpool`` and autoscalers work).
"""

from __future__ import annotations

from pydantic import Field

from kubehatch.api.common import ApiModel, Conditions, StatusModel
from kubehatch.api.container import EnvVar, ResourceRequirements
from kubehatch.api.fields import WorkerRef
from kubehatch.api.resource import AGE_COLUMN, PrinterColumn, Resource, ResourceInfo
from kubehatch.api.wire import WORKER_POOLS

MAX_SLOTS = 256
DEFAULT_LEASE_SECONDS = 15
CONDITION_READY = "Ready"


class WorkerPoolSpec(ApiModel):
    """The workers' image and code, how many there are and how much each runs at once."""

    image: str = Field(
        min_length=1,
        description="Container image with the workflows' code (as `kubehatch image build` makes).",
    )
    worker: WorkerRef | None = Field(
        default=None,
        description=(
            "Where the workers import the Worker that registers the actions, as "
            "'module:attribute'; defaults to the image's KUBEHATCH_WORKER variable."
        ),
    )
    replicas: int = Field(
        default=1, ge=0, le=1000, description="Worker pods (an HPA or KEDA may set it)."
    )
    slots: int = Field(
        default=4,
        ge=1,
        le=MAX_SLOTS,
        description="Steps one worker pod runs at once, each in a child process.",
    )
    lease_seconds: int = Field(
        default=DEFAULT_LEASE_SECONDS,
        ge=3,
        le=600,
        description=(
            "A worker renews its claim on a running step every third of this; a claim not "
            "renewed for this long (the worker was killed, its node lost) is given up and "
            "the step runs again as a new attempt."
        ),
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Resource requests and limits of each worker pod."
    )
    env: list[EnvVar] = Field(
        default_factory=list, description="Extra environment variables for the workers."
    )
    service_account_name: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "ServiceAccount of the worker pods: the chart's worker account (the default), "
            "which may claim and report this namespace's tasks and nothing else; the "
            "operator refuses any other."
        ),
    )


class WorkerPoolStatus(StatusModel):
    """What the operator sees of the pool: its workers and its queue."""

    observed_generation: int | None = Field(
        default=None, description="The spec generation this status describes."
    )
    conditions: Conditions
    replicas: int = Field(default=0, ge=0, description="Worker pods that exist.")
    ready_replicas: int = Field(default=0, ge=0, description="Worker pods that are ready.")
    queued: int = Field(default=0, ge=0, description="Tasks waiting for a free slot.")
    running: int = Field(default=0, ge=0, description="Tasks a worker has claimed.")
    selector: str | None = Field(
        default=None, description="Label selector of the pool's pods (for the scale subresource)."
    )


class WorkerPool(Resource):
    """A pool of warm worker pods that run steps without a pod per step."""

    info = ResourceInfo(
        kind="WorkerPool",
        plural=WORKER_POOLS,
        short_names=("wp",),
        description="Warm worker pods that run workflow steps without a pod per step.",
        columns=(
            PrinterColumn("Replicas", "integer", ".spec.replicas"),
            PrinterColumn("Ready", "integer", ".status.readyReplicas"),
            PrinterColumn("Slots", "integer", ".spec.slots"),
            PrinterColumn("Queued", "integer", ".status.queued"),
            PrinterColumn("Running", "integer", ".status.running"),
            PrinterColumn("Image", "string", ".spec.image", priority=1),
            AGE_COLUMN,
        ),
        scale=True,
    )

    spec: WorkerPoolSpec = Field(description="The desired pool.")
    status: WorkerPoolStatus | None = Field(default=None, description="Observed state.")
