"""The plain data that decisions are made over and return.

What the cluster shows about a run and its step Jobs goes in (`Run`, `Attempt`), what
to do comes out (`Decision`: a status and the actions that get there). No I/O, no
kopf: the store builds these from watch events, the reconciler applies decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from kubehatch.api.spawns import ChildRun, Spawn
from kubehatch.api.workflow import StepSpec
from kubehatch.api.workflowrun import WorkflowRunSpec, WorkflowRunStatus


class AttemptState(StrEnum):
    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


# --- child runs (ctx.spawn; decided in children.py) ------------------------------------------
class ChildPhase(StrEnum):
    ABSENT = "Absent"
    """Not created yet, or gone."""
    ACTIVE = "Active"
    """Created, not finished."""
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    """Finished otherwise: failed, cancelled or timed out."""
    FOREIGN = "Foreign"
    """A run of the child's name exists that the parent run does not own."""


ChildRequest = ChildRun
"""One child run a step asked for (the API layer's type: the SDK reads it too)."""
SpawnRequest = Spawn
"""What a step's output asked for: child runs, in order (see `kubehatch.api.spawns`)."""


@dataclass(frozen=True)
class ChildState:
    """What the cluster shows about one child run."""

    name: str
    phase: ChildPhase
    final: str | None = None
    """The run's phase once finished (Succeeded, Failed, Cancelled, TimedOut)."""
    message: str | None = None
    """Why it ended (its Succeeded condition's message)."""
    output: Any = None
    """Its result, once Succeeded: its leaf step's output, or a dict by leaf name."""


@dataclass(frozen=True)
class Spawned:
    """A succeeded attempt whose output asks for child runs, with its children's states
    (one per requested run, in order)."""

    request: SpawnRequest | None
    problem: str | None = None
    """Why the request cannot be read (then ``request`` is None)."""
    children: tuple[ChildState, ...] = ()


@dataclass(frozen=True)
class CreateChild:
    """Create one child run of step ``step``."""

    step: str
    name: str
    index: int
    request: ChildRequest


@dataclass(frozen=True)
class StepOutput:
    """Store a step's output (of a spawning step: its children's results), before the
    status that names it is written."""

    step: str
    configmap: str
    text: str


@dataclass(frozen=True)
class Attempt:
    """What the cluster shows about the Job of one step attempt."""

    step: str
    attempt: int
    job_name: str
    state: AttemptState
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timed_out: bool = False
    message: str | None = None
    permanent: bool = False
    """The step said a retry cannot help (a PermanentError, exit code 3)."""
    cancelled: bool = False
    """The step cancelled itself (ctx.cancel(), exit code 4): Cancelled, not retried."""
    uid: str = ""
    """The Job's uid: its pods carry it in the controller-uid label."""
    terminating: bool = False
    """Failed, but its pod is still stopping: a retry waits, never runs beside it."""
    started: bool = False
    """Its container has started (the step's code runs or ran)."""
    waiting: str | None = None
    """Why its pod has not started yet (scheduling, image pull, config), from the pod."""
    resource_version: int = 0
    """Of the Job as last seen; 0 for a Job this process just created."""
    waiting_read_at: datetime | None = None
    """When `waiting` was read: it is read again at most every few seconds."""
    pod_done: bool = True
    """No pod of the Job runs any more. False for a success seen first in the step's
    output (its pod is on its way out) until the Job says so."""
    suspended: bool = False
    """The Job is suspended (Kueue has not admitted it yet): no pod is made meanwhile."""
    item: int | None = None
    """For an item of a forEach step: its index (`step` is the forEach step's name)."""
    spawn: Spawned | None = None
    """Set on a succeeded attempt whose output asks for child runs (read for workflows
    with spec.spawns only): the request and the children's states."""
    pool: str | None = None
    """The WorkerPool that runs it (its `job_name` names a WorkerTask, not a Job)."""
    worker: str | None = None
    """The pool's worker pod that claimed it."""
    lease_expires_at: datetime | None = None
    """When the worker's claim lapses unless renewed (a claimed attempt on a pool): its
    last renewal plus the lease, by the worker's clock or, if later, by the operator's
    (when it saw the renewal): a worker's clock behind the operator's loses nothing."""
    lease_seconds: int = 0
    lost: bool = False
    """Its worker stopped (killed, node lost, shut down): run again, not held against
    the step's retries."""
    output: str | None = None
    """A succeeded pool attempt's output, as JSON: handed to its children's tasks."""
    output_configmaps: tuple[dict[str, Any], ...] = ()
    """For a succeeded pool attempt: the ConfigMaps a step pod would have written, which
    the operator writes (a worker writes none) before the status names them."""

    @property
    def live(self) -> bool:
        """Its pod may still run: the run holds its concurrency slot meanwhile."""
        if self.state is AttemptState.ACTIVE:
            return True
        if self.state is AttemptState.FAILED:
            return self.terminating
        return not self.pod_done


@dataclass(frozen=True)
class Run:
    """The parts of a WorkflowRun that decisions depend on."""

    name: str
    generation: int
    spec: WorkflowRunSpec
    status: WorkflowRunStatus
    uid: str = ""


@dataclass(frozen=True)
class Item:
    """One item of a forEach step: its index, and the item as JSON."""

    index: int
    value: str


@dataclass(frozen=True)
class StartAttempt:
    """Create the Job for one attempt of a step; parents maps parent -> output ConfigMap."""

    step: StepSpec
    attempt: int
    job_name: str
    parents: dict[str, str]
    name: str = ""
    """The step's name in labels, env and its output's name: `step.name` unless set (the
    concurrency key pseudo-step is not a step of the workflow)."""
    rate_limits: tuple[tuple[str, int], ...] = ()
    """Rate limit units the attempt took, as (key, units): its Job records them."""
    failures: dict[str, str] | None = None
    """For the on-failure step: what each failed step said, by step name."""
    item: int | None = None
    """For an item of a forEach step: its index; `item_value` is the item, as JSON."""
    item_value: str | None = None

    @property
    def step_name(self) -> str:
        return self.name or self.step.name


@dataclass(frozen=True)
class RunEvent:
    """A Kubernetes Event to post on the run."""

    type: str  # Normal or Warning
    reason: str
    message: str


class Verdict(StrEnum):
    START = "Start"
    QUEUE = "Queue"
    CANCEL = "Cancel"
    FAIL = "Fail"


@dataclass(frozen=True)
class Gate:
    """The concurrency limit's verdict on a run (see `admission`); None when there is no limit."""

    verdict: Verdict
    key: str | None = None
    message: str = ""
    limit: int | None = None
    """The run's own limit for its key (concurrency.maxRunsExpression), to record."""
    reason: str | None = None
    """Why, in one word, when the verdict ends or holds the run (a condition's reason)."""
    wake_at: datetime | None = None
    """When a queued run must be looked at again without a slot freeing (its queue timeout)."""


@dataclass
class Decision:
    status: WorkflowRunStatus
    start: list[StartAttempt] = field(default_factory=list)
    stop_jobs: list[str] = field(default_factory=list)
    """Jobs (and WorkerTasks) to delete: their steps are stopped."""
    lost_tasks: list[str] = field(default_factory=list)
    """WorkerTasks whose worker's claim lapsed: marked WorkerLost (so a late report of the
    old worker is refused) before the next attempt starts."""
    create_input: bool = False
    wake_at: datetime | None = None
    events: list[RunEvent] = field(default_factory=list)
    suspended: bool = False
    """The run is suspended: attempts that would start wait instead (see `steps.launch`)."""
    create_children: list[CreateChild] = field(default_factory=list)
    """Child runs to create (before the status is written: names are deterministic)."""
    outputs: list[StepOutput] = field(default_factory=list)
    """Outputs the operator stores itself (before the status that names them)."""
