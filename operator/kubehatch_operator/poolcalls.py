"""The operator's API calls for worker pools: WorkerTasks and the pools' Deployments.

Beside `kube.Kube`, on the same client and with the same rules: creates treat 409 as
"already there", deletes and status patches treat 404 as "gone".
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubehatch.api import wire
from kubehatch.api.workertask import TaskPhase
from kubehatch_operator.calls import ForeignObjectError, call, ignoring, unread
from kubehatch_operator.metrics import API_READS, API_WRITES

_CUSTOM = (wire.GROUP, wire.VERSION)


class PoolCalls:
    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)

    # --- WorkerTasks ----------------------------------------------------------------------
    async def create_task(self, body: dict[str, Any]) -> bool:
        """Create a task; False when one of its name exists (an earlier pass made it)."""

        meta = body["metadata"]
        API_WRITES.labels("create", wire.WORKER_TASKS).inc()
        create = self.custom.create_namespaced_custom_object
        try:
            await call(unread, create, *_CUSTOM, meta["namespace"], wire.WORKER_TASKS, body)
            return True
        except ApiException as err:
            if err.status != 409:
                raise
        found = await call(
            self.custom.get_namespaced_custom_object,
            *_CUSTOM, meta["namespace"], wire.WORKER_TASKS, meta["name"],
        )  # fmt: skip
        mine = {r["uid"] for r in meta.get("ownerReferences") or []}
        theirs = {
            r.get("uid") for r in wire.mapping(found.get("metadata")).get("ownerReferences") or []
        }
        if not mine & theirs:
            raise ForeignObjectError(
                f"WorkerTask {meta['name']!r} exists but is not owned by this run; delete it, "
                "then the run carries on"
            )
        return False

    async def delete_task(self, namespace: str, name: str) -> None:
        """Stop a task: its worker sees it go and stops the step (SIGTERM, then SIGKILL)."""

        API_WRITES.labels("delete", wire.WORKER_TASKS).inc()
        await ignoring(
            (404,), self.custom.delete_namespaced_custom_object,
            *_CUSTOM, namespace, wire.WORKER_TASKS, name, propagation_policy="Background",
        )  # fmt: skip

    async def mark_task(self, namespace: str, name: str, patch: dict[str, Any]) -> bool:
        """Patch a task's status on its resourceVersion's condition (to mark it lost);
        False when it changed meanwhile (409), True when done or gone."""
        API_WRITES.labels("patch", f"{wire.WORKER_TASKS}/status").inc()
        try:
            await call(
                self.custom.patch_namespaced_custom_object_status,
                *_CUSTOM, namespace, wire.WORKER_TASKS, name, patch,
            )  # fmt: skip
        except ApiException as err:
            if err.status == 409:
                return False
            if err.status != 404:
                raise
        return True

    async def active_tasks(self, namespace: str, run: str) -> list[str]:
        """The run's tasks not finished, as the API (not a cache) lists them."""

        API_READS.labels("list", wire.WORKER_TASKS).inc()
        listed = await call(
            self.custom.list_namespaced_custom_object, *_CUSTOM, namespace, wire.WORKER_TASKS,
            label_selector=f"{wire.LABEL_RUN}={wire.label_value(run)}",
        )  # fmt: skip
        finished = {TaskPhase.SUCCEEDED.value, TaskPhase.FAILED.value}
        return [
            str(task["metadata"]["name"])
            for task in listed.get("items") or []
            if wire.mapping(task.get("status")).get("phase") not in finished
        ]

    # --- the pools' Deployments -----------------------------------------------------------
    async def apply_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the pool's Deployment, or replace the one there when what the operator
        wants of it changed (its spec-hash annotation says what it was made from)."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        api = self.apps.api_client
        try:
            found = await call(self.apps.read_namespaced_deployment, name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            API_WRITES.labels("create", "deployments").inc()
            created = await call(self.apps.create_namespaced_deployment, namespace, body)
            return dict(api.sanitize_for_serialization(created))
        current = dict(api.sanitize_for_serialization(found))
        owners = {r.get("uid") for r in current["metadata"].get("ownerReferences") or []}
        if not owners & {r["uid"] for r in meta.get("ownerReferences") or []}:
            raise ForeignObjectError(
                f"Deployment {namespace}/{name} exists and is not this WorkerPool's; delete or "
                "rename it, or give the pool another name"
            )
        annotations = current["metadata"].get("annotations") or {}
        wanted = meta["annotations"][wire.ANNOTATION_SPEC_HASH]
        if annotations.get(wire.ANNOTATION_SPEC_HASH) == wanted:
            return current
        replacement = {
            **body,
            "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]},
        }
        API_WRITES.labels("replace", "deployments").inc()
        replaced = await call(self.apps.replace_namespaced_deployment, name, namespace, replacement)
        return dict(api.sanitize_for_serialization(replaced))

    async def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A pool's Deployment as the API has it, or None when it is gone."""
        API_READS.labels("get", "deployments").inc()
        try:
            found = await call(self.apps.read_namespaced_deployment, name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return dict(self.apps.api_client.sanitize_for_serialization(found))

    async def patch_pool_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:

        API_WRITES.labels("patch", f"{wire.WORKER_POOLS}/status").inc()
        await ignoring(
            (404,), self.custom.patch_namespaced_custom_object_status,
            *_CUSTOM, namespace, wire.WORKER_POOLS, name, {"status": status},
        )  # fmt: skip
