"""The operator's writes and the few reads that watch events do not carry.

Blocking calls of the official client, run in a thread pool sized for many runs in
flight. Every create treats 409 Conflict as success: names are deterministic, so an
existing object is the one this call would have made.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubehatch.api import wire
from kubehatch_operator.metrics import API_WRITES

log = logging.getLogger(__name__)


def load_config(pool_size: int) -> client.ApiClient:
    """In-cluster configuration in a pod, the current kubeconfig elsewhere."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    # --- creates (idempotent) -------------------------------------------------------
    async def create_configmap(self, body: dict[str, Any]) -> None:
        await _create(self.core.create_namespaced_config_map, body, "configmaps")

    async def create_job(self, body: dict[str, Any]) -> None:
        await _create(self.batch.create_namespaced_job, body, "jobs")

    # --- deletes --------------------------------------------------------------------
    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and its pods now: the pods get SIGTERM and their grace period."""
        API_WRITES.labels("delete", "jobs").inc()
        await _ignore_missing(
            self.batch.delete_namespaced_job, name, namespace, propagation_policy="Background"
        )

    async def delete_run(self, namespace: str, name: str) -> None:
        API_WRITES.labels("delete", wire.WORKFLOW_RUNS).inc()
        await _ignore_missing(
            self.custom.delete_namespaced_custom_object,
            wire.GROUP,
            wire.VERSION,
            namespace,
            wire.WORKFLOW_RUNS,
            name,
            propagation_policy="Background",
        )

    # --- status and events ------------------------------------------------------------
    async def patch_run_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        API_WRITES.labels("patch", "workflowruns/status").inc()
        return await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object_status,
            wire.GROUP,
            wire.VERSION,
            namespace,
            wire.WORKFLOW_RUNS,
            name,
            {"status": patch},
        )

    async def post_event(
        self, involved: dict[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on the object, as `kubectl describe` shows them. Best effort."""
        meta = involved["metadata"]
        now = datetime.now(UTC)
        body = {
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "kubehatch-operator"},
            "reportingComponent": wire.EVENT_REPORTER,
        }
        API_WRITES.labels("create", "events").inc()
        try:
            await asyncio.to_thread(self.core.create_namespaced_event, meta["namespace"], body)
        except ApiException as err:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], err.reason)

    # --- reads ------------------------------------------------------------------------
    async def active_jobs(self, namespace: str, run: str) -> list[str]:
        """The run's Jobs still running, as the API (not a cache) lists them."""
        jobs = await asyncio.to_thread(
            self.batch.list_namespaced_job,
            namespace,
            label_selector=f"{wire.LABEL_RUN}={wire.label_value(run)}",
        )
        done = {"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"}
        return [
            job.metadata.name
            for job in jobs.items
            if not any(c.type in done and c.status == "True" for c in job.status.conditions or [])
        ]

    async def read_output(self, namespace: str, configmap: str) -> Any:
        """The JSON output a step pod stored."""
        cm = await asyncio.to_thread(self.core.read_namespaced_config_map, configmap, namespace)
        return json.loads((cm.data or {}).get(wire.OUTPUT_KEY, "null"))

    async def termination_message(self, namespace: str, job: str) -> tuple[str | None, int | None]:
        """Why the pod of a failed Job stopped: its termination message and exit code."""
        pods = await asyncio.to_thread(
            self.core.list_namespaced_pod, namespace, label_selector=f"job-name={job}"
        )
        for pod in pods.items:
            for status in pod.status.container_statuses or []:
                terminated = status.state.terminated if status.state else None
                if terminated is None:
                    continue
                message = (terminated.message or "").strip() or (
                    f"container exited with code {terminated.exit_code} ({terminated.reason})"
                )
                return message, terminated.exit_code
        return None, None


async def _create(method: Any, body: dict[str, Any], resource: str) -> None:
    API_WRITES.labels("create", resource).inc()
    try:
        await asyncio.to_thread(method, body["metadata"]["namespace"], body)
    except ApiException as err:
        if err.status != 409:
            raise


async def _ignore_missing(method: Any, *args: Any, **kwargs: Any) -> None:
    try:
        await asyncio.to_thread(method, *args, **kwargs)
    except ApiException as err:
        if err.status != 404:
            raise
