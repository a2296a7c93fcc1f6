"""Steps on a WorkerPool: the WorkerTask of one attempt, and what a task tells back.

Pure, as `jobs` is for Jobs: the reconciler creates the task where it would create a Job,
and the store turns the task's status into the same `Attempt` a Job gives, so every
decision (retries, timeouts, conditions, hooks, concurrency) is the same in both modes.
The task carries all its code reads (the step pod's environment, the run's input, the
parents' outputs), so a worker reads nothing else; its output comes back in its status
and the operator stores it as the ConfigMap a step pod would have written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import outputs, spawns, stepenv, wire
from kubehatch.api.workerpool import DEFAULT_LEASE_SECONDS
from kubehatch.api.workertask import TaskPhase, TaskReason
from kubehatch_operator.entries import attempt_from_job
from kubehatch_operator.jobs import rate_limit_annotations
from kubehatch_operator.model import Attempt, AttemptState, StartAttempt

KIND = "WorkerTask"
MAX_LOST = 3
"""Attempts lost with their worker that a step is run again after, beyond its retries: a
step that kills its worker every time (out of memory, say) fails after that many."""
_RETRYABLE_STOPS = frozenset({TaskReason.WORKER_LOST, TaskReason.CANCELLED})
"""Ends that are the worker's, not the step's: the attempt is lost and run again."""


def is_task(body: Mapping[str, Any]) -> bool:
    return body.get("kind") == KIND


def attempt_of(body: Mapping[str, Any]) -> Attempt | None:
    """The attempt a step Job or a WorkerTask runs (None for anything else)."""
    return attempt_from_task(body) if is_task(body) else attempt_from_job(dict(body))


def worker_task(
    *,
    env: stepenv.StepEnv,
    start: StartAttempt,
    pool: str,
    input_json: str,
    parents: Mapping[str, str],
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> dict[str, Any]:
    """The WorkerTask of one attempt on ``pool``, told ``env`` (what its pod would be:
    `jobs.attempt_env`); ``parents`` maps each parent whose output the step gets to that
    output as JSON."""
    metadata: dict[str, Any] = {
        "name": start.job_name,
        "namespace": env.namespace,
        "labels": {**env.labels, wire.LABEL_POOL: pool},
        "ownerReferences": [wire.owner_reference("WorkflowRun", env.run, env.run_uid)],
    }
    if annotations := rate_limit_annotations(start):
        metadata["annotations"] = annotations
    return {
        "apiVersion": wire.API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "pool": pool,
            "env": env.to_env(),
            "input": input_json,
            "parents": {p: parents.get(p, "null") for p in env.parents},
            "leaseSeconds": lease_seconds,
        },
    }


def attempt_from_task(task: Mapping[str, Any]) -> Attempt | None:
    """The step attempt a WorkerTask runs, and how far it got; None when it is not ours."""
    meta = task.get("metadata") or {}
    labels = meta.get("labels") or {}
    try:
        step, attempt = labels[wire.LABEL_STEP], int(labels[wire.LABEL_ATTEMPT])
        item = int(labels[wire.LABEL_ITEM]) if wire.LABEL_ITEM in labels else None
    except (KeyError, ValueError):
        return None
    spec = wire.mapping(task.get("spec"))
    status = wire.mapping(task.get("status"))
    version = int(meta.get("resourceVersion") or 0)
    created = wire.parse_time(meta.get("creationTimestamp"))
    worker = status.get("worker") or None
    base = Attempt(
        step, attempt, str(meta.get("name", "")), AttemptState.ACTIVE, created,
        resource_version=version, item=item, pool=str(spec.get("pool") or ""), worker=worker,
    )  # fmt: skip
    phase = status.get("phase") or TaskPhase.PENDING.value
    finished = wire.parse_time(status.get("finishedAt"))
    if phase == TaskPhase.SUCCEEDED:
        text = str(status.get("output") or "null")
        return replace(
            base, state=AttemptState.SUCCEEDED, finished_at=finished, started=True,
            output=text, output_configmaps=tuple(output_configmaps(spec.get("env"), text)),
        )  # fmt: skip
    if phase == TaskPhase.FAILED:
        reason = status.get("reason")
        return replace(
            base,
            state=AttemptState.FAILED,
            finished_at=finished,
            started=worker is not None,
            message=str(status.get("message") or reason or "failed"),
            permanent=reason == TaskReason.PERMANENT,
            cancelled=reason == TaskReason.SELF_CANCELLED,
            timed_out=reason == TaskReason.TIMED_OUT,
            lost=reason in _RETRYABLE_STOPS,
        )
    renewed = wire.parse_time(status.get("renewedAt"))
    if worker is None or renewed is None:
        return base
    seconds = int(spec.get("leaseSeconds") or DEFAULT_LEASE_SECONDS)
    return replace(
        base,
        started=True,
        lease_expires_at=renewed + timedelta(seconds=seconds),
        lease_seconds=seconds,
    )


def lost(attempt: Attempt, now: datetime) -> Attempt:
    """A claimed attempt whose worker's lease lapsed: failed, and to be run again."""
    renewed = attempt.lease_expires_at
    message = (
        f"its worker {attempt.worker} stopped renewing its claim"
        + (f" (lease lapsed at {renewed.isoformat()})" if renewed else "")
        + ": the worker pod was killed or its node lost; running the step again"
    )
    return replace(attempt, state=AttemptState.FAILED, finished_at=now, message=message, lost=True)


def lost_patch(message: str, now: datetime, version: int) -> dict[str, Any]:
    """The patch that marks a task lost, on the condition that it is still the version the
    decision saw (a renewal or a report that came meanwhile makes it conflict); a report
    of its old worker after it conflicts in turn."""
    return {
        "metadata": {"resourceVersion": str(version)},
        "status": {
            "phase": TaskPhase.FAILED.value,
            "reason": TaskReason.WORKER_LOST.value,
            "message": message,
            "finishedAt": wire.format_time(now),
        },
    }


def seen_lease(attempt: Attempt, known: Attempt | None, now: datetime) -> Attempt:
    """A claimed attempt's lease, counted from when this process saw its renewal if that
    is later than the worker's own clock says (a new version of the task: a renewal)."""
    if attempt.lease_expires_at is None:
        return attempt
    if known is not None and known.resource_version == attempt.resource_version:
        return replace(attempt, lease_expires_at=known.lease_expires_at)
    seen = now + timedelta(seconds=attempt.lease_seconds)
    return replace(attempt, lease_expires_at=max(attempt.lease_expires_at, seen))


def output_configmaps(task_env: Any, text: str) -> list[dict[str, Any]]:
    """The ConfigMap(s) a step pod would have written for this output: the operator writes
    them for a pool attempt (the same names, labels, owner and spawn marking)."""
    try:
        env = stepenv.StepEnv.from_env({wire.ENV_WORKER: "-", **wire.mapping(task_env)})
    except stepenv.StepEnvError:
        return []  # not a task the operator made: nothing of it is stored
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return outputs.configmaps(env, text, spawn=spawns.is_spawn_request(value))


def waiting_reason(pool: str, known: PoolView | None) -> str:
    """Why a task on ``pool`` is not claimed yet, for the step's message."""
    if known is None:
        return f"WorkerPool {pool!r} does not exist in this namespace; create it"
    if known.ready == 0:
        return f"no ready worker in WorkerPool {pool!r} ({known.replicas} replicas)"
    return f"queued on WorkerPool {pool!r}: every slot of its {known.ready} ready workers is busy"


@dataclass(frozen=True, slots=True)
class PoolView:
    """What the store knows of one WorkerPool: enough to say why its tasks wait."""

    replicas: int
    ready: int
    lease_seconds: int
