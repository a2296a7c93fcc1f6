"""The triggers' reads and writes, over the operator's API clients (``Kube``).

Blocking calls of the official client run in the operator's thread pool. Creates treat
409 Conflict as success (every name is deterministic); deletes treat 404 as success.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubehatch.api import wire
from kubehatch_operator.kube import Kube


class TriggerKube:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.custom = kube.custom
        self.batch = kube.batch

    # --- WorkflowRuns -----------------------------------------------------------------------
    async def create_run(self, body: dict[str, Any]) -> bool:
        """Create a run; False if one of that name exists already (an earlier attempt)."""
        try:
            await asyncio.to_thread(
                self.custom.create_namespaced_custom_object,
                wire.GROUP, wire.VERSION, body["metadata"]["namespace"], wire.WORKFLOW_RUNS, body,
            )  # fmt: skip
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True

    # --- Workflows ------------------------------------------------------------------------
    async def list_workflows(self, namespace: str) -> list[dict[str, Any]]:
        """A consistent read: a Workflow created before the event is always in it."""
        result = await asyncio.to_thread(
            self.custom.list_namespaced_custom_object,
            wire.GROUP,
            wire.VERSION,
            namespace,
            wire.WORKFLOWS,
        )
        return list(result.get("items") or [])

    async def patch_workflow_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status; None if the Workflow is gone."""
        return await _patch_status(self.custom, namespace, wire.WORKFLOWS, name, patch)

    # --- WorkflowEvents ---------------------------------------------------------------------
    async def patch_event_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        return await _patch_status(self.custom, namespace, wire.WORKFLOW_EVENTS, name, patch)

    async def delete_event(self, namespace: str, name: str, uid: str) -> None:
        """Delete this very event (the uid precondition spares a new one of the same name)."""
        try:
            await asyncio.to_thread(
                self.custom.delete_namespaced_custom_object,
                wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_EVENTS, name,
                body={"preconditions": {"uid": uid}},
            )  # fmt: skip
        except ApiException as err:
            if err.status not in (404, 409):  # 409: the uid differs, i.e. another object
                raise

    # --- CronJobs -----------------------------------------------------------------------------
    async def list_cronjobs(self, namespace: str, workflow: str) -> list[dict[str, Any]]:
        selector = (
            f"{wire.LABEL_MANAGED_BY}={wire.MANAGED_BY},"
            f"{wire.LABEL_WORKFLOW}={wire.label_value(workflow)}"
        )
        result = await asyncio.to_thread(
            self.batch.list_namespaced_cron_job, namespace, label_selector=selector
        )
        api = self.batch.api_client
        return [api.sanitize_for_serialization(item) for item in result.items]

    async def create_cronjob(self, body: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(
                self.batch.create_namespaced_cron_job, body["metadata"]["namespace"], body
            )
        except ApiException as err:
            if err.status != 409:
                raise

    async def replace_cronjob(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        await asyncio.to_thread(
            self.batch.replace_namespaced_cron_job, meta["name"], meta["namespace"], body
        )

    async def delete_cronjob(self, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(
                self.batch.delete_namespaced_cron_job,
                name, namespace, propagation_policy="Background",
            )  # fmt: skip
        except ApiException as err:
            if err.status != 404:
                raise

    # --- Events ---------------------------------------------------------------------------------
    async def post_event(
        self, involved: dict[str, Any], type_: str, reason: str, message: str
    ) -> None:
        await self.kube.post_event(involved, type_, reason, message)


async def _patch_status(
    custom: Any, namespace: str, plural: str, name: str, patch: dict[str, Any]
) -> dict[str, Any] | None:
    try:
        return await asyncio.to_thread(
            custom.patch_namespaced_custom_object_status,
            wire.GROUP, wire.VERSION, namespace, plural, name, {"status": patch},
        )  # fmt: skip
    except ApiException as err:
        if err.status == 404:
            return None
        raise
