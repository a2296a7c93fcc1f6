"""What ``kubehatch logs`` shows of a run: every attempt, oldest first, in either mode.

An attempt in a Job has a pod of its own: its log. An attempt on a WorkerPool ran in a
worker pod among other steps: its lines of that worker's log, which the worker prefixes
with ``[<task name>] `` (the prefix is taken off here).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from kubehatch._apierrors import ApiError, not_started, status_message
from kubehatch.api import wire

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api, V1Pod

_EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class PodLog:
    """One step attempt and what it printed (what ``kubehatch logs`` shows)."""

    job: str  # the attempt's Job, or its WorkerTask
    pod: str  # its pod, or the worker pod that ran it ("" while no worker claimed it)
    phase: str  # the pod's (Pending, Running, Succeeded, Failed, Unknown), or the task's
    waiting: str | None  # why it has not started ("ErrImagePull: ..."), if not
    log: str  # so far; empty while it has not started


class Client(Protocol):
    """What of `kubehatch.client.Client` reading logs uses."""

    namespace: str
    _core: CoreV1Api

    def _api_errors(
        self, verb: str, plural: str, name: str | None = None
    ) -> contextlib.AbstractContextManager[None]: ...

    def _list(self, plural: str, selector: str | None = None) -> dict[str, Any]: ...


def step_logs(client: Client, run: str, step: str | None) -> list[PodLog]:
    """Every attempt of the run (of ``step``), Jobs' pods and pool tasks, by age."""
    selector = f"{wire.LABEL_RUN}={wire.label_value(run)}"
    if step:
        selector += f",{wire.LABEL_STEP}={wire.label_value(step)}"
    found = [*_pods(client, selector), *_tasks(client, selector)]
    return [log for _, log in sorted(found, key=lambda f: f[0])]


def _pods(client: Client, selector: str) -> list[tuple[datetime, PodLog]]:
    with client._api_errors("list", "pods"):
        listed = client._core.list_namespaced_pod(client.namespace, label_selector=selector)
    found = []
    for pod in listed.items:
        if (meta := pod.metadata) and meta.name:  # the API server always sets both
            job = (meta.labels or {}).get("job-name", meta.name)
            created = meta.creation_timestamp or _EPOCH
            found.append((created, _pod_log(client, meta.name, job, pod)))
    return found


def _pod_log(client: Client, name: str, job: str, pod: V1Pod) -> PodLog:
    phase = (pod.status.phase if pod.status else None) or "Unknown"
    if (waiting := not_started(pod)) is not None:
        return PodLog(job, name, phase, waiting, "")
    return PodLog(job, name, phase, None, _read_log(client, name))


def _read_log(client: Client, pod: str) -> str:
    from kubernetes.client.exceptions import ApiException

    with client._api_errors("get", "pods/log", pod):
        try:
            return str(client._core.read_namespaced_pod_log(pod, client.namespace))
        except ApiException as err:
            if err.status in (401, 403):  # the same for every pod: stop here
                raise
            return f"(no log: {status_message(err)})"  # e.g. the pod is gone


def _tasks(client: Client, selector: str) -> list[tuple[datetime, PodLog]]:
    """The run's attempts on pools; none where WorkerTasks are not served or not readable
    (an operator before pools, RBAC that gives pods only)."""
    try:
        listed = client._list(wire.WORKER_TASKS, selector)
    except ApiError as err:
        if err.status in (403, 404):
            return []
        raise
    logs: dict[str, str] = {}  # one read per worker pod, whatever its number of tasks
    found = []
    for task in listed.get("items") or []:
        meta, status = task.get("metadata") or {}, wire.mapping(task.get("status"))
        created = wire.parse_time(meta.get("creationTimestamp")) or _EPOCH
        found.append((created, _task_log(client, meta.get("name", ""), task, status, logs)))
    return found


def _task_log(
    client: Client, name: str, task: dict[str, Any], status: dict[str, Any], logs: dict[str, str]
) -> PodLog:
    phase = str(status.get("phase") or "Pending")
    worker = status.get("worker")
    if not worker:
        pool = wire.mapping(task.get("spec")).get("pool", "?")
        return PodLog(name, "", phase, f"not claimed yet by a worker of WorkerPool {pool!r}", "")
    if worker not in logs:
        logs[worker] = _read_log(client, worker)
    text = logs[worker]
    if text.startswith("(no log: "):
        return PodLog(name, worker, phase, None, text.replace("(no log:", "(no log of worker:", 1))
    prefix = f"[{name}] "
    lines = [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]
    return PodLog(name, worker, phase, None, "".join(f"{line}\n" for line in lines))
