"""WorkerPools: each runs as a Deployment of `kubehatch worker` pods, and its status says
how many workers are ready and how many of its tasks wait (what autoscalers read).

`worker_deployment` and `pool_status` are pure; `PoolController` is the thin part that
applies them when a pool changes, and every few seconds for its Deployment's readiness
and its counts (tasks come and go far more often than a pool's status is worth writing).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Gauge

from kubehatch.api import wire
from kubehatch.api.common import Condition, ConditionStatus, set_condition
from kubehatch.api.workerpool import CONDITION_READY, WorkerPoolSpec
from kubehatch_operator.clock import now
from kubehatch_operator.entries import Key
from kubehatch_operator.jobs import RESTRICTED_CONTAINER, restricted_pod
from kubehatch_operator.kube import Kube
from kubehatch_operator.model import Attempt, AttemptState
from kubehatch_operator.settings import StepSettings
from kubehatch_operator.store import Store
from kubehatch_operator.tasks import PoolView

log = logging.getLogger(__name__)

READY_FILE = "/tmp/kubehatch-worker-ready"
"""What a worker creates once its code is loaded and its first listing worked."""
COUNT_SECONDS = 2.0
"""How often the pools' queued and running counts are refreshed (status and metrics)."""
WORKER_GRACE_SECONDS = 30
MAX_POOL_NAME = 46
"""Pods of a Deployment are `<name>-<hash>-<5>` with `<name>-<hash>` cut to 58 characters:
past 46, a pod's name no longer tells its pool (the chart's admission policy reads it)."""

POOL_QUEUED = Gauge(
    "kubehatch_pool_queued_tasks",
    "Steps waiting for a free slot of a WorkerPool: what an HPA or KEDA scales the pool on.",
    ["namespace", "pool"],
)
POOL_RUNNING = Gauge(
    "kubehatch_pool_running_tasks", "Steps a WorkerPool's workers run now.", ["namespace", "pool"]
)
POOL_READY = Gauge(
    "kubehatch_pool_ready_workers", "Ready worker pods of a WorkerPool.", ["namespace", "pool"]
)


def pool_labels(name: str) -> dict[str, str]:
    return {
        wire.LABEL_MANAGED_BY: wire.MANAGED_BY,
        "app.kubernetes.io/component": "worker",
        wire.LABEL_POOL: name,
    }


def selector(name: str) -> str:
    return f"{wire.LABEL_POOL}={name}"


def worker_deployment(
    namespace: str, name: str, uid: str, spec: WorkerPoolSpec, settings: StepSettings
) -> dict[str, Any]:
    """The Deployment of a pool's workers; restricted Pod Security, read-only root."""
    env: list[dict[str, Any]] = [
        {"name": wire.ENV_POOL, "value": name},
        {"name": wire.ENV_SLOTS, "value": str(spec.slots)},
        {"name": wire.ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": wire.ENV_POD_NAMESPACE,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        *([{"name": wire.ENV_WORKER, "value": spec.worker}] if spec.worker else []),
        *(e.to_container() for e in spec.env),
    ]
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(wire.WORKER_COMMAND),
        "env": env,
        "readinessProbe": {
            "exec": {"command": ["test", "-f", READY_FILE]},
            "periodSeconds": 2,
            "failureThreshold": 1,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": dict(RESTRICTED_CONTAINER),
    }
    if spec.resources is not None:
        container["resources"] = spec.resources.to_dict()
    labels = pool_labels(name)
    template_spec: dict[str, Any] = {
        "serviceAccountName": spec.service_account_name or settings.worker_service_account,
        "terminationGracePeriodSeconds": WORKER_GRACE_SECONDS,
        "enableServiceLinks": False,
        "securityContext": restricted_pod(settings.run_as_user),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if settings.node_selector:
        template_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        template_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    spec_body = {
        "replicas": spec.replicas,
        "selector": {"matchLabels": {wire.LABEL_POOL: name}},
        "template": {"metadata": {"labels": labels}, "spec": template_spec},
    }
    digest = wire.digest(json.dumps(spec_body, sort_keys=True), 16)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {wire.ANNOTATION_SPEC_HASH: digest},
            "ownerReferences": [wire.owner_reference("WorkerPool", name, uid)],
        },
        "spec": spec_body,
    }


def task_counts(attempts: Iterable[Attempt]) -> tuple[Counter[str], Counter[str]]:
    """Queued (unclaimed) and running (claimed) tasks, by pool."""
    queued: Counter[str] = Counter()
    running: Counter[str] = Counter()
    for attempt in attempts:
        if attempt.pool and attempt.state is AttemptState.ACTIVE:
            (running if attempt.started else queued)[attempt.pool] += 1
    return queued, running


def pool_status(
    old: Mapping[str, Any],
    generation: int,
    name: str,
    deployment: Mapping[str, Any] | None,
    queued: int,
    running: int,
    at: datetime,
    problem: str | None = None,
) -> dict[str, Any]:
    """The pool's status from its Deployment and its tasks; Ready once a worker is."""
    shown = wire.mapping(deployment.get("status")) if deployment else {}
    replicas = int(shown.get("replicas") or 0)
    ready = int(shown.get("readyReplicas") or 0)
    if problem is not None:
        condition = ("False", "DeploymentFailed", problem)
    elif ready > 0:
        condition = ("True", "WorkersReady", f"{ready} of {replicas} workers ready")
    else:
        condition = ("False", "NoReadyWorker", "no worker is ready yet; steps on it wait")
    conditions = [Condition.model_validate(c) for c in old.get("conditions") or []]
    conditions = set_condition(
        conditions,
        Condition(
            type=CONDITION_READY,
            status=ConditionStatus(condition[0]),
            reason=condition[1],
            message=condition[2],
            observed_generation=generation,
            last_transition_time=at,
        ),
    )
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": ready,
        "queued": queued,
        "running": running,
        "selector": selector(name),
        "conditions": [c.to_dict() for c in conditions],
    }


class PoolController:
    def __init__(self, store: Store, kube: Kube, settings: StepSettings) -> None:
        self.store = store
        self.kube = kube
        self.settings = settings
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.deployments: dict[Key, dict[str, Any]] = {}
        self.written: dict[Key, dict[str, Any]] = {}
        self.problems: dict[Key, str] = {}

    async def pool_changed(self, body: dict[str, Any], deleted: bool) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if deleted:  # its Deployment goes with it (owner reference)
            for known in (self.bodies, self.deployments, self.written, self.problems):
                known.pop(key, None)
            self.store.pools.pop(key, None)
            return
        self.bodies[key] = body
        try:
            spec = WorkerPoolSpec.model_validate(body.get("spec") or {})
        except ValueError as err:
            self.problems[key] = f"WorkerPool {key[1]!r} is invalid: {err}"
        else:
            account = spec.service_account_name
            if len(key[1]) > MAX_POOL_NAME:
                self.problems[key] = (
                    f"metadata.name: WorkerPool {key[1]!r} has {len(key[1])} characters; at "
                    f"most {MAX_POOL_NAME} (its pods' names must tell their pool): rename it"
                )
                self._remember(key)
                await self.write_status(key)
                return
            allowed = self.settings.allowed_for_workers
            if account is not None and account not in allowed:
                self.problems[key] = (
                    f"spec.serviceAccountName: ServiceAccount {account!r} may not run "
                    f"workers; use one of: {', '.join(sorted(allowed))}"
                )
                self._remember(key)
                await self.write_status(key)
                return
            wanted = worker_deployment(*key, str(meta.get("uid", "")), spec, self.settings)
            try:
                self.deployments[key] = await self.kube.pools.apply_deployment(wanted)
                self.problems.pop(key, None)
            except Exception as err:  # shown in the pool's status, tried again on its change
                log.warning("WorkerPool %s/%s: its Deployment: %s", *key, err)
                self.problems[key] = f"its Deployment could not be made: {err}"
        self._remember(key)
        await self.write_status(key)

    async def refresh(
        self, key: Key, counts: tuple[Counter[str], Counter[str]] | None = None
    ) -> None:
        """Read the pool's Deployment (its ready workers) and write the pool's status; a
        Deployment deleted by hand is made again. Polled, not watched: a watch would
        bring every Deployment of the namespaces served, for a few pools."""
        body = self.bodies.get(key)
        if body is None:
            return
        deployment = await self.kube.pools.read_deployment(*key)
        if deployment is None and key not in self.problems:
            await self.pool_changed(body, deleted=False)
            return
        self.deployments[key] = deployment or {}
        self._remember(key)
        await self.write_status(key, counts)

    def _remember(self, key: Key) -> None:
        spec = wire.mapping(self.bodies[key].get("spec"))
        shown = wire.mapping((self.deployments.get(key) or {}).get("status"))
        self.store.pools[key] = PoolView(
            replicas=int(spec.get("replicas", 1)),
            ready=int(shown.get("readyReplicas") or 0),
            lease_seconds=int(spec.get("leaseSeconds") or 15),
        )
        POOL_READY.labels(*key).set(self.store.pools[key].ready)

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        """Queued and running tasks by pool, from every attempt the store holds."""
        return task_counts(a for run in self.store.attempts.values() for a in run.values())

    async def write_status(
        self, key: Key, counts: tuple[Counter[str], Counter[str]] | None = None
    ) -> None:
        """The pool's status, if it changed; ``counts``: `counts()` taken already."""
        body = self.bodies.get(key)
        if body is None:
            return
        queued, running = counts or self.counts()
        POOL_QUEUED.labels(*key).set(queued[key[1]])
        POOL_RUNNING.labels(*key).set(running[key[1]])
        old = wire.mapping(body.get("status"))
        status = pool_status(
            self.written.get(key, old),
            int(body["metadata"].get("generation") or 1),
            key[1],
            self.deployments.get(key),
            queued[key[1]],
            running[key[1]],
            now(),
            self.problems.get(key),
        )
        if _same(self.written.get(key, old), status):
            return
        await self.kube.pools.patch_pool_status(*key, status)
        self.written[key] = status

    def count_every(self, seconds: float = COUNT_SECONDS) -> asyncio.Task[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                counts = self.counts()  # one walk over the attempts for every pool
                for key in list(self.bodies):
                    try:
                        await self.refresh(key, counts)
                    except Exception as err:
                        log.warning("WorkerPool %s/%s: status: %s", *key, err)

        return asyncio.get_running_loop().create_task(loop())


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a status write would change nothing (conditions compared without times)."""

    def bare(status: Mapping[str, Any]) -> dict[str, Any]:
        conditions = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in status.get("conditions") or []
        ]
        return {**status, "conditions": conditions}

    return bare(old) == bare(new)
