"""The operator's writes, and the few reads that watch events do not carry.

One class for every controller of the operator (runs, triggers): blocking calls of the
official client, run in a thread pool sized for many runs in flight. Creates treat 409
Conflict as "already there" (every name is deterministic, so an existing object is the
one this call would have made); deletes and status patches treat 404 as "gone".
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubehatch.api import wire
from kubehatch_operator.calls import ForeignObjectError, call, create_object, ignoring, unread
from kubehatch_operator.listing import Lister
from kubehatch_operator.metrics import API_READS, API_WRITES, EVENTS_DROPPED
from kubehatch_operator.outputs import read_output
from kubehatch_operator.poolcalls import PoolCalls

log = logging.getLogger(__name__)

JOB_DONE = frozenset({"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"})
"""Job conditions after which its pod runs no more (the first two once the pod is gone)."""


def load_config(pool_size: int) -> client.ApiClient:
    """In-cluster configuration in a pod, the current kubeconfig elsewhere."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


EVENT_SENDERS = 2
"""Threads (and connections) posting Events, apart from the pool of the other calls."""
EVENT_BACKLOG = 1000
"""Events waiting to be sent beyond which new ones are dropped (counted)."""

REFUSALS = frozenset({400, 403, 404, 413, 422})
"""API answers to a create that no retry can change: the request itself is wrong."""


def refused(err: BaseException) -> bool:
    return isinstance(err, ApiException) and err.status in REFUSALS


def api_message(err: ApiException) -> str:
    """The Status message of an API error (its body is JSON), else the raw reason."""
    try:
        return str(json.loads(err.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{err.status} {err.reason}"


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.lister = Lister(self.custom, self.batch)
        self.pools = PoolCalls(api)
        self._event_senders = ThreadPoolExecutor(EVENT_SENDERS, thread_name_prefix="events")
        self._events_pending = 0

    # --- creates (idempotent) -----------------------------------------------------------
    async def create_configmap(self, body: dict[str, Any]) -> bool:
        created = await create_object(self.core.create_namespaced_config_map, body, "configmaps")
        if not created:
            await self._check_owner(self.core.read_namespaced_config_map, body)
        return created

    async def create_job(self, body: dict[str, Any]) -> bool:
        created = await create_object(self.batch.create_namespaced_job, body, "jobs")
        if not created:
            await self._check_owner(self.batch.read_namespaced_job, body)
        return created

    async def _check_owner(self, read: Callable[..., Any], body: dict[str, Any]) -> None:
        """After a 409: the object there must be the one this create would have made.

        Names are derived from the run's uid, so only a leftover or a forgery can differ;
        handing on what someone else made would let them choose what a step reads.
        """
        meta = body["metadata"]
        found = await call(read, meta["name"], meta["namespace"])
        mine = {r["uid"] for r in meta.get("ownerReferences") or []}
        theirs = {r.uid for r in found.metadata.owner_references or []}
        if not mine & theirs:
            raise ForeignObjectError(
                f"{body['kind']} {meta['name']!r} exists but is not owned by this run "
                f"(owners: {sorted(theirs) or 'none'}); delete it, then the run carries on"
            )

    async def create_cronjob(self, body: dict[str, Any]) -> bool:
        return await create_object(self.batch.create_namespaced_cron_job, body, "cronjobs")

    async def create_run(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create a run; the created object, or None if one of that name exists already
        (an earlier attempt)."""
        API_WRITES.labels("create", wire.WORKFLOW_RUNS).inc()
        try:
            created = await call(
                self.custom.create_namespaced_custom_object, wire.GROUP, wire.VERSION,
                body["metadata"]["namespace"], wire.WORKFLOW_RUNS, body,
            )  # fmt: skip
        except ApiException as err:
            if err.status == 409:
                return None
            raise
        return dict(created)

    # --- updates ------------------------------------------------------------------------
    async def replace_cronjob(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        API_WRITES.labels("replace", "cronjobs").inc()
        await call(self.batch.replace_namespaced_cron_job, meta["name"], meta["namespace"], body)

    async def patch_run(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch a run itself (its spec.cancel, its labels); one that is gone is done."""
        API_WRITES.labels("patch", wire.WORKFLOW_RUNS).inc()
        await ignoring(
            (404,), self.custom.patch_namespaced_custom_object,
            wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_RUNS, name, patch,
        )  # fmt: skip

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status of one of kubehatch's objects; None if it is gone."""
        API_WRITES.labels("patch", f"{plural}/status").inc()
        try:
            result: dict[str, Any] = await call(
                self.custom.patch_namespaced_custom_object_status,
                wire.GROUP, wire.VERSION, namespace, plural, name, {"status": patch},
            )  # fmt: skip
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return result

    # --- deletes ------------------------------------------------------------------------
    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and its pods now: the pods get SIGTERM and their grace period."""
        await self._delete_batch("jobs", self.batch.delete_namespaced_job, namespace, name)

    async def delete_cronjob(self, namespace: str, name: str) -> None:
        await self._delete_batch("cronjobs", self.batch.delete_namespaced_cron_job, namespace, name)

    async def _delete_batch(
        self, resource: str, method: Callable[..., Any], namespace: str, name: str
    ) -> None:
        API_WRITES.labels("delete", resource).inc()
        await ignoring((404,), method, name, namespace, propagation_policy="Background")

    async def delete_custom(
        self, plural: str, namespace: str, name: str, uid: str | None = None
    ) -> None:
        """Delete one of kubehatch's objects; with ``uid``, only that very object.

        The uid precondition spares a new object created meanwhile under the same name
        (the API server answers 409, which counts as done).
        """
        API_WRITES.labels("delete", plural).inc()
        body = {"preconditions": {"uid": uid}} if uid else None
        await ignoring(
            (404, 409), self.custom.delete_namespaced_custom_object,
            wire.GROUP, wire.VERSION, namespace, plural, name,
            propagation_policy="Background", body=body,
        )  # fmt: skip

    # --- Events -------------------------------------------------------------------------
    async def post_event(
        self, involved: dict[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on the object, as `kubectl describe` shows them. Best effort, as
        client-go's recorder: sent by senders of their own, so that they never hold up the
        writes that move runs, and dropped when EVENT_BACKLOG are waiting already."""
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
        if self._events_pending >= EVENT_BACKLOG:
            EVENTS_DROPPED.inc()  # the API server is behind: runs come first
            return
        self._events_pending += 1
        API_WRITES.labels("create", "events").inc()
        # Typed loosely, as `call`: the client's stubs want its model where a dict serves.
        post: Callable[..., Any] = self.core.create_namespaced_event
        create = partial(unread, post, meta["namespace"], body)
        try:
            await asyncio.get_running_loop().run_in_executor(self._event_senders, create)
        except ApiException as err:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], err.reason)
        finally:
            self._events_pending -= 1

    # --- reads --------------------------------------------------------------------------
    async def active_jobs(self, namespace: str, run: str) -> list[str]:
        """The run's Jobs still running, as the API (not a cache) lists them."""
        jobs = await call(
            self.batch.list_namespaced_job,
            namespace,
            label_selector=f"{wire.LABEL_RUN}={wire.label_value(run)}",
        )
        return [
            str(job.metadata.name)
            for job in jobs.items
            if not any(
                c.type in JOB_DONE and c.status == "True" for c in job.status.conditions or []
            )
        ]

    async def read_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A run as the API has it, or None when it is gone."""
        API_READS.labels("get", wire.WORKFLOW_RUNS).inc()
        try:
            run = await call(
                self.custom.get_namespaced_custom_object,
                wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_RUNS, name,
            )  # fmt: skip
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return dict(run)

    async def read_run_input(self, namespace: str, name: str) -> dict[str, Any]:
        """A run's spec.input (the store keeps only small ones)."""
        API_READS.labels("get", wire.WORKFLOW_RUNS).inc()
        run = await call(
            self.custom.get_namespaced_custom_object,
            wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_RUNS, name,
        )  # fmt: skip
        return wire.mapping(wire.mapping(run.get("spec")).get("input"))

    async def read_output(self, namespace: str, configmap: str) -> Any:
        """The JSON value a step stored in its output ``configmap`` (``<job>-output``),
        whatever its form: plain, compressed, or split into parts (None: no output key).

        Raises ``kubehatch.errors.OutputTooLargeError`` (``size``, ``limit``: bytes of
        JSON) past ``kubehatch.api.outputs.MAX_OPERATOR_READ_BYTES`` (1 MiB), which the
        operator does not read; ``OutputCorruptError`` when parts are missing or do not
        match their digest; ApiException 404 without a head. See `outputs.read_output`.
        """
        return await read_output(self.core, namespace, configmap)

    async def _job_pods(self, namespace: str, job_uid: str) -> list[Any]:
        """The pods of one Job, by its uid (a Job of the same name before it is not it)."""
        pods = await call(
            self.core.list_namespaced_pod,
            namespace,
            label_selector=f"batch.kubernetes.io/controller-uid={job_uid}",
        )
        return list(pods.items)

    async def termination_message(
        self, namespace: str, job_uid: str
    ) -> tuple[str | None, int | None]:
        """Why the pod of a failed Job stopped: its termination message and exit code."""
        pods = await self._job_pods(namespace, job_uid)
        for pod in pods:
            for status in (pod.status.container_statuses if pod.status else None) or []:
                terminated = status.state.terminated if status.state else None
                if terminated is None:
                    continue
                message = (terminated.message or "").strip() or (
                    f"container exited with code {terminated.exit_code} ({terminated.reason})"
                )
                return message, terminated.exit_code
        return None, None

    async def why_waiting(self, namespace: str, job_uid: str) -> str | None:
        """Why a Job's pod has not started: its waiting reason, or the Job's FailedCreate."""
        for pod in await self._job_pods(namespace, job_uid):
            status = pod.status
            for container in (status.container_statuses if status else None) or []:
                waiting = container.state.waiting if container.state else None
                if waiting is not None and waiting.reason not in (None, "ContainerCreating"):
                    return f"{waiting.reason}: {waiting.message or 'no message'}"
            for condition in (status.conditions if status else None) or []:
                if condition.type == "PodScheduled" and condition.status == "False":
                    return f"{condition.reason}: {condition.message or 'no message'}"
            return None
        # No pod at all: the Job controller could not create it (quota, Pod Security...).
        events = await call(
            self.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.uid={job_uid},reason=FailedCreate",
        )
        latest = max(events.items, key=lambda e: e.last_timestamp or e.event_time, default=None)
        return f"FailedCreate: {latest.message}" if latest is not None else None

    async def list_workflows(self, namespace: str, not_older_than: int) -> list[dict[str, Any]]:
        """The namespace's Workflows as of a resourceVersion or later (the watch cache)."""
        API_READS.labels("list", wire.WORKFLOWS).inc()
        listed = await call(
            self.custom.list_namespaced_custom_object,
            wire.GROUP, wire.VERSION, namespace, wire.WORKFLOWS,
            resource_version=str(not_older_than), resource_version_match="NotOlderThan",
        )  # fmt: skip
        return list(listed.get("items") or [])

    async def list_cronjobs(self, namespace: str, workflow: str) -> list[dict[str, Any]]:
        selector = (
            f"{wire.LABEL_MANAGED_BY}={wire.MANAGED_BY},"
            f"{wire.LABEL_WORKFLOW}={wire.label_value(workflow)}"
        )
        result = await call(self.batch.list_namespaced_cron_job, namespace, label_selector=selector)
        api = self.batch.api_client
        return [api.sanitize_for_serialization(item) for item in result.items]
