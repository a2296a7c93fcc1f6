"""The wire contract: what the operator, step pods, trigger pods, the client and the CLI agree on.

Every name that crosses a process boundary is spelled here and nowhere else: the API
group and version, labels and annotations, the environment of step and trigger pods,
mount paths and ConfigMap keys, exit codes, and the rules that derive object names.
The step pod's environment is :class:`~kubehatch.api.stepenv.StepEnv`, beside it. This
module imports nothing of kubehatch but plain JSON helpers: it sits below the API
models, the SDK and the operator alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from kubehatch.api.jsonvalues import format_time as format_time  # re-exported
from kubehatch.api.jsonvalues import mapping as mapping
from kubehatch.api.jsonvalues import parse_time as parse_time

# --- API group and version ------------------------------------------------------------
GROUP = "kubehatch.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

WORKFLOWS = "workflows"
WORKFLOW_RUNS = "workflowruns"
WORKFLOW_EVENTS = "workflowevents"
WORKER_POOLS = "workerpools"
WORKER_TASKS = "workertasks"

# --- labels and annotations -------------------------------------------------------------
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubehatch"
LABEL_WORKFLOW = f"{GROUP}/workflow"
LABEL_RUN = f"{GROUP}/run"
LABEL_STEP = f"{GROUP}/step"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_WORKER = f"{GROUP}/worker"
"""On rendered Workflows: the SDK Worker they came from."""
LABEL_POOL = f"{GROUP}/pool"
"""On WorkerTasks and on worker pods: the WorkerPool's name."""
LABEL_ITEM = f"{GROUP}/item"  # forEach items' Jobs, pods and outputs: the item's index
LABEL_RETRY = f"{GROUP}/retry"  # on a run whose spec.retry is to be carried out
LABEL_REPLAY_OF = f"{GROUP}/replay-of"  # on runs kubehatch replay made: the run repeated
LABEL_TRIGGER_TYPE = f"{GROUP}/trigger-type"
"""event, cron or schedule: `kubectl get wfr -l kubehatch.dev/trigger-type=cron` works."""
LABEL_EVENT = f"{GROUP}/event"
"""On runs an event started: the WorkflowEvent's name."""
LABEL_PARENT_RUN = f"{GROUP}/parent-run"
"""On child runs (``ctx.spawn``): the parent run's name; its ownerReference names it too."""
LABEL_PARENT_STEP = f"{GROUP}/parent-step"
"""On child runs: the step of the parent run that spawned them."""
LABEL_CHILD_INDEX = f"{GROUP}/child-index"
"""On child runs: their place in the spawn request (0, 1, ...), the order of the results."""
SPAWN_KEY = f"{GROUP}/spawn"
"""The reserved key of a step output that asks for child runs (``ctx.spawn``):
``{SPAWN_KEY: {"runs": [{"workflow": ..., "input": {...}, "key": ...}], "single": bool}}``."""

ANNOTATION_TRIGGER = f"{GROUP}/trigger"
"""The spec entry that fired, as in status.lastTriggered: event:user:*, cron:0 * * * *, at:..."""
ANNOTATION_EVENT_METADATA = f"{GROUP}/event-metadata"
ANNOTATION_SCHEDULE = f"{GROUP}/schedule"
ANNOTATION_RUN_PREFIX = f"{GROUP}/run-prefix"
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"
ANNOTATION_RATE_LIMITS = f"{GROUP}/rate-limits"
ANNOTATION_INPUT = f"{GROUP}/input"
"""On a step pod: the run's input, when small (`inline_input`); a downward API volume
makes it the file the pod reads, as the input ConfigMap would."""
"""On a step Job: the rate limit units its attempt took, as JSON [[key, units], ...]."""

EVENT_REPORTER = f"{GROUP}/operator"
"""reportingComponent of the Kubernetes Events the operator posts."""

# --- object names -------------------------------------------------------------------------
MAX_OBJECT_NAME = 253
MAX_LABEL_VALUE = 63
MAX_JOB_NAME = 57
"""The Job controller names a Job's pods `<job>-<5 characters>` only while the Job's name
leaves room for them in 63 (longer names are cut); at most 57, a pod's name tells its
Job's, which is what the admission policy on step outputs relies on."""
UID_HASH = 5
"""Characters of the run's uid hash in every name derived from a run."""
MAX_CRONJOB_NAME = 52
"""The CronJob controller appends "-<11 digits>" to name its Jobs, which must stay <= 63."""

KEY_STEP = "concurrency.key"
"""The pseudo-step that runs a concurrency key action. The dot keeps it apart from every
real step name (DNS labels have none), in Job names and labels alike."""

CRON_TIME_FORMAT = "%Y%m%d-%H%M"


def digest(text: str, length: int) -> str:
    """A short, stable hash of ``text`` for names derived from it."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def bounded(name: str, limit: int) -> str:
    """``name`` if it fits in ``limit``, else a prefix of it plus a short hash of the whole.

    Used for object names and label values derived from user names, so that long names
    stay valid and distinct, and every component derives the same value.
    """
    if len(name) <= limit:
        return name
    return f"{name[: limit - 9].rstrip('-._')}-{digest(name, 8)}"


def label_value(value: str) -> str:
    """A label value (at most 63 characters) that still identifies ``value``."""
    return bounded(value, MAX_LABEL_VALUE)


def _derived(readable: str, limit: int, unique: str) -> str:
    """``readable`` cut to fit, then a hash of ``unique``: distinct whenever ``unique`` is."""
    return f"{bounded(readable, limit - UID_HASH - 1)}-{digest(unique, UID_HASH)}"


def job_name(run: str, uid: str, step: str, attempt: int) -> str:
    """The Job of one step attempt: deterministic, so a second create is a 409.

    The hash covers the run's uid, the step and the attempt, so neither two steps whose
    names join alike (run ``etl-x``, step ``load-data``; run ``etl-x-load``, step
    ``data``) nor a run re-created under the same name can meet another's Job.
    """
    return _derived(f"{run}-{step}-{attempt}", MAX_JOB_NAME, f"{uid}/{step}/{attempt}")


def child_run_name(run: str, uid: str, step: str, child: str, attempt: int = 1) -> str:
    """A child run of step ``step`` (its key or index): deterministic, so a redone pass
    creates nothing twice; another attempt (a retried run) gets children of its own."""
    unique = f"{uid}/{step}/{child}" + (f"/{attempt}" if attempt > 1 else "")
    return _derived(f"{run}-{step}-{child}", MAX_LABEL_VALUE, unique)


def item_job_name(run: str, uid: str, step: str, item: int, attempt: int) -> str:
    """The Job of one attempt of item ``item`` of forEach step ``step``."""
    return job_name(run, uid, f"{step}.{item}", attempt)


def gathered_output_name(run: str, uid: str, step: str, round: int = 0) -> str:
    """An output the operator writes (a forEach step's, a wait's), once per retry round."""
    unique = f"{uid}/{step}/all/{round}" if round else f"{uid}/{step}/all"
    return output_configmap_name(_derived(f"{run}-{step}-all", MAX_JOB_NAME, unique))


def input_configmap_name(run: str, uid: str) -> str:
    return _derived(f"{run}-input", MAX_OBJECT_NAME, uid)


def output_configmap_name(job: str) -> str:
    """An attempt's output: named after its Job, the one name its pod may create (with
    the parts of a large output, ``<job>-output-<n>``: see :mod:`kubehatch.api.outputs`)."""
    return f"{job}-output"


def cron_run_name(prefix: str, scheduled: datetime) -> str:
    """The run of one cron time: ``<prefix>-<YYYYmmdd-HHMM>`` (UTC)."""
    return f"{prefix}-{scheduled.astimezone(UTC).strftime(CRON_TIME_FORMAT)}"


# --- the step pod -------------------------------------------------------------------------
INPUT_DIR = PurePosixPath("/kubehatch/input")
PARENTS_DIR = PurePosixPath("/kubehatch/parents")
INPUT_KEY = "input.json"
"""Key of the run's input in its input ConfigMap."""
OUTPUT_KEY = "output.json"
"""Key of a step's output in its output ConfigMap, when it is small (up to 256 KiB of
JSON); larger ones are compressed, or split into parts: see :mod:`kubehatch.api.outputs`."""
STEP_COMMAND = ("kubehatch", "step")
WORKER_COMMAND = ("kubehatch", "worker")
"""What a WorkerPool's pods run; its environment names the pool and the pod."""
ENV_POOL = "KUBEHATCH_POOL"
ENV_POD_NAME = "KUBEHATCH_POD_NAME"
ENV_POD_NAMESPACE = "KUBEHATCH_POD_NAMESPACE"
ENV_SLOTS = "KUBEHATCH_SLOTS"
TRIGGER_COMMAND = ("kubehatch", "trigger")

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
"""The step failed; retried when it has retries left."""
EXIT_PERMANENT = 3
"""The step failed and says a retry cannot help (a PermanentError): never retried."""
EXIT_SELF_CANCELLED = 4
"""The step cancelled itself (``ctx.cancel()``): Cancelled, never retried."""
EXIT_TIMED_OUT = 124
"""The step's code ran longer than its timeout (counted from its start, in the pod)."""
EXIT_CANCELLED = 143
"""Stopped by SIGTERM: cancelled, or its run timed out."""

MAX_INPUT_BYTES = 1024 * 1024 - 64 * 1024
"""A run's input as JSON: one ConfigMap key, within the API server's 1 MiB per object
(with room for the ConfigMap's metadata). The client checks it before creating a run;
the operator fails a run created with more."""
INLINE_INPUT_BYTES = 16 * 1024
"""An input up to this size (as JSON) travels in the step pods' own annotation (see
ANNOTATION_INPUT): the run then needs no input ConfigMap, one write less before its first
step can start."""

ENV_PREFIX = "KUBEHATCH_"
"""Every variable of this contract starts with it; user env may not."""
ENV_WORKER = "KUBEHATCH_WORKER"
"""module:attribute of the Worker in the image (spec.worker, or baked into the image)."""
ENV_JOB_NAME = "KUBEHATCH_JOB_NAME"
"""Trigger pods: their Job's name, which encodes the scheduled time."""
ENV_NAMESPACE = "KUBEHATCH_NAMESPACE"


def is_reserved_env(name: str) -> bool:
    """Whether an environment variable belongs to this contract (not to the user)."""
    return name.startswith(ENV_PREFIX)


# --- objects both sides build -----------------------------------------------------------
def run_labels(workflow: str, run: str) -> dict[str, str]:
    """Labels of everything a run owns: `kubectl get cm,jobs -l kubehatch.dev/run=...`."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_WORKFLOW: label_value(workflow),
        LABEL_RUN: label_value(run),
    }


def step_labels(workflow: str, run: str, step: str, attempt: int) -> dict[str, str]:
    return {
        **run_labels(workflow, run),
        LABEL_STEP: label_value(step),
        LABEL_ATTEMPT: str(attempt),
    }


def owner_reference(kind: str, name: str, uid: str, *, controller: bool = True) -> dict[str, Any]:
    """An owner reference to one of kubehatch's objects (deleting it deletes the owned)."""
    reference: dict[str, Any] = {"apiVersion": API_VERSION, "kind": kind, "name": name, "uid": uid}
    if controller:
        reference.update(controller=True, blockOwnerDeletion=True)
    return reference


def run_owner(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the WorkflowRun that owns ``body``, if one does."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "WorkflowRun" and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(ref["name"]), str(ref.get("uid", ""))
    return None


def configmap(
    name: str, namespace: str, labels: dict[str, str], owner: dict[str, Any], key: str, text: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "data": {key: text},
    }


def inline_input(value: Any) -> str | None:
    """A run's input as the step pods' annotation carries it (compact JSON), or None when
    it is larger than INLINE_INPUT_BYTES and goes into the input ConfigMap."""
    text = json.dumps(value if value is not None else {}, separators=(",", ":"))
    return text if len(text.encode()) <= INLINE_INPUT_BYTES else None


def input_configmap(
    *, namespace: str, workflow: str, run: str, run_uid: str, input_json: str
) -> dict[str, Any]:
    """The run's input when it is too large for the pods' environment (`inline_input`):
    every step pod mounts it (the operator creates it)."""
    return configmap(
        input_configmap_name(run, run_uid),
        namespace,
        run_labels(workflow, run),
        owner_reference("WorkflowRun", run, run_uid),
        INPUT_KEY,
        input_json,
    )
