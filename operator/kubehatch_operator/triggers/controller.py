"""The triggers' controller: read, decide (the pure modules), write.

No kopf here: ``kubehatch_operator.handlers`` feeds it watch events. The initial listing
after a restart replays every Workflow, WorkflowEvent and CronJob, so all state below is
rebuilt from the cluster (due one-off times fire, unhandled events are handled,
retention timers are re-armed). Work is serialised per object and coalesced by the
operator's one work queue: a Workflow is synced by one task at a time however many
watch events, event runs and timers ask for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubehatch.api import wire
from kubehatch_operator.clock import now
from kubehatch_operator.entries import resource_version
from kubehatch_operator.kube import Kube, api_message
from kubehatch_operator.patches import merge_patch
from kubehatch_operator.settings import Settings
from kubehatch_operator.store import Key, Store
from kubehatch_operator.triggers import events, schedules
from kubehatch_operator.triggers.crons import (
    TriggerPod,
    desired_cronjobs,
    last_cron_run,
    plan_cronjobs,
)
from kubehatch_operator.triggers.model import WorkflowInfo, event_info, workflow_info
from kubehatch_operator.triggers.status import (
    readiness,
    ready_changed,
    status_differs,
    workflow_status,
)
from kubehatch_operator.workqueue import KeyedQueue

log = logging.getLogger(__name__)


class Triggers:
    """The triggers' state within one operator process (rebuilt from watch events)."""

    def __init__(self, store: Store, kube: Kube, settings: Settings) -> None:
        self.store = store
        self.kube = kube
        self.pod = TriggerPod(
            image=settings.triggers.image,
            service_account=settings.triggers.service_account,
            run_as_user=settings.steps.run_as_user,
        )
        self.event_retention = settings.triggers.event_retention
        self.post_events = settings.observability.post_events
        self.events: dict[Key, dict[str, Any]] = {}
        self.last_runs: dict[Key, dict[str, str]] = defaultdict(dict)
        """Per workflow, runs made by triggers that its status does not show yet."""
        self.cron_synced: dict[Key, tuple[Any, ...]] = {}
        self.cron_errors: dict[Key, list[str]] = {}
        self.retention: dict[Key, str] = {}
        """Handled events waiting for their retention to run out, with their uid."""
        self.run_created: Callable[[dict[str, Any]], None] | None = None
        """Told of each run a trigger created, with the API server's answer: its first pass
        need not wait for the run's watch event."""
        self.workflow_worker = KeyedQueue("syncing the triggers of workflow", self.sync_workflow)
        self.event_worker = KeyedQueue("handling event", self.handle_event)
        self.expiry = KeyedQueue("deleting handled event", self._expire, retry_seconds=60)

    async def _create_run(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        created = await self.kube.create_run(manifest)
        if created is not None and self.run_created is not None:
            self.run_created(created)
        return created

    # --- Workflows ------------------------------------------------------------------------
    def workflow_changed(self, key: Key) -> None:
        """The store saw the Workflow change (or go): sync its triggers, or forget them."""
        if key in self.store.workflows:
            self.workflow_worker.kick(key)
            return
        self.last_runs.pop(key, None)
        self.cron_synced.pop(key, None)
        self.cron_errors.pop(key, None)
        self.workflow_worker.cancel(key)

    async def sync_workflow(self, key: Key) -> float | None:
        """CronJobs, due one-off times and status for one Workflow; seconds to the next time."""
        entry = self.store.workflows.get(key)
        if entry is None:
            return None
        body = entry.body
        workflow = workflow_info(body)
        await self._sync_cronjobs(key, workflow)
        when = now()
        plan = schedules.plan_at(workflow, when)
        recorded = dict(self.last_runs.get(key, {}))
        last = {**workflow.last_triggered, **recorded}
        for at in plan.fire:
            manifest = schedules.at_run(workflow, at)
            created = await self._create_run(manifest)
            last[schedules.at_key(at)] = manifest["metadata"]["name"]
            log.info(
                "workflow %s/%s: time %s %s run %s", *key, at.isoformat(),
                "created" if created else "had already created", manifest["metadata"]["name"],
            )  # fmt: skip
        ready = readiness(
            workflow,
            image_missing=not self.pod.image,
            cron_errors=self.cron_errors.get(key, ()),
        )
        new = workflow_status(workflow, when, ready=ready, last_triggered=last)
        if status_differs(workflow.status, new):
            old = {k: workflow.status[k] for k in new if k in workflow.status}
            patch = merge_patch(old, new)
            updated = await self.kube.patch_status(wire.WORKFLOWS, *key, patch)
            if updated is None:
                return None
            self.store.observe_workflow(updated)
            if self.post_events and ready_changed(workflow.status, new):
                kind = "Normal" if ready.status == "True" else "Warning"
                await self.kube.post_event(body, kind, ready.reason, ready.message)
        for trigger, run in recorded.items():
            if self.last_runs.get(key, {}).get(trigger) == run:
                del self.last_runs[key][trigger]
        if plan.pending:
            return max((plan.pending[0] - now()).total_seconds(), 0.0)
        return None

    async def _sync_cronjobs(self, key: Key, workflow: WorkflowInfo) -> None:
        """Make the workflow's CronJobs match its spec (once per generation and settings)."""
        fingerprint = (
            workflow.uid,
            workflow.generation,
            workflow.crons,
            workflow.zoned_crons,
            self.pod,
        )
        if self.cron_synced.get(key) == fingerprint:
            return
        desired = desired_cronjobs(workflow, self.pod)
        if desired is None:  # no trigger image: the Ready condition says so
            return
        existing = await self.kube.list_cronjobs(*key)
        plan = plan_cronjobs(desired, existing)
        errors = []
        writes: list[tuple[Callable[[dict[str, Any]], Awaitable[object]], dict[str, Any]]]
        writes = [(self.kube.create_cronjob, b) for b in plan.create]
        writes += [(self.kube.replace_cronjob, b) for b in plan.replace]
        for write, body in writes:
            try:
                await write(body)
            except ApiException as err:
                if err.status not in (400, 422):
                    raise
                schedule = body["spec"]["schedule"]
                if body["spec"].get("timeZone") not in (None, "Etc/UTC"):
                    schedule += f" in {body['spec']['timeZone']}"
                errors.append(
                    f"the API server refused the CronJob for {schedule!r}: {api_message(err)}"
                )
        for name in plan.delete:
            await self.kube.delete_cronjob(key[0], name)
        if not plan.empty:
            log.info(
                "workflow %s/%s: CronJobs created %d, replaced %d, deleted %d", *key,
                len(plan.create), len(plan.replace), len(plan.delete),
            )  # fmt: skip
        self.cron_errors[key] = errors
        self.cron_synced[key] = fingerprint

    def note_run(self, workflow: Key, trigger: str, run: str) -> None:
        """A trigger made (or found) a run: show it in the workflow's status.lastTriggered."""
        entry = self.store.workflows.get(workflow)
        shown = (entry.body.get("status") or {}).get("lastTriggered") or {} if entry else {}
        if shown.get(trigger) != run:
            self.last_runs[workflow][trigger] = run
            if entry is not None:
                self.workflow_worker.kick(workflow)

    # --- CronJobs ---------------------------------------------------------------------------
    def observe_cronjob(self, body: dict[str, Any], deleted: bool) -> None:
        meta = body["metadata"]
        owner = next(
            (r["name"] for r in meta.get("ownerReferences") or [] if r.get("kind") == "Workflow"),
            None,
        )
        if owner is None:
            return
        key = (meta["namespace"], owner)
        if deleted:
            # Deleted by hand, or by the sync itself: the next sync puts back what is wanted.
            self.cron_synced.pop(key, None)
            entry = self.store.workflows.get(key)
            # Not for a Workflow on its way out: the garbage collector is deleting its CronJobs.
            if entry is not None and not entry.body["metadata"].get("deletionTimestamp"):
                self.workflow_worker.kick(key)
            return
        last = last_cron_run(body)
        if last is not None:
            self.note_run(key, *last)

    # --- WorkflowEvents ---------------------------------------------------------------------
    def observe_event(self, body: dict[str, Any], deleted: bool) -> None:
        info = event_info(body)
        key = info.ref
        if deleted:
            self.events.pop(key, None)
            self.retention.pop(key, None)
            self.expiry.cancel(key)
            return
        if info.handled_at is not None:
            self.events.pop(key, None)
            self._arm_retention(key, info.uid, info.handled_at)
            return
        self.events[key] = body
        self.event_worker.kick(key)

    async def _workflows_before(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Every Workflow of the event's namespace created before the event, from the store
        when its Workflow watch has passed the event's resourceVersion (watch events come in
        order), else from the API server's watch cache at that version (then the store
        knows them too, and the events after it match without a list)."""
        namespace = event["metadata"]["namespace"]
        version = resource_version(event) or 0
        if self.store.workflows_version < version:
            for body in await self.kube.list_workflows(namespace, not_older_than=version):
                self.store.observe_workflow(body)
            self.store.workflows_version = max(self.store.workflows_version, version)
        return [
            entry.body for (ns, _), entry in list(self.store.workflows.items()) if ns == namespace
        ]

    async def handle_event(self, key: Key) -> float | None:
        """Create the event's runs (deterministic names: a replay makes none twice)."""
        body = self.events.get(key)
        if body is None:
            return None
        info = event_info(body)
        workflows = [workflow_info(w) for w in await self._workflows_before(body)]
        plan = events.plan_event(info, workflows, now())
        await asyncio.gather(*(self._create_run(run) for run in plan.runs))
        updated = await self.kube.patch_status(wire.WORKFLOW_EVENTS, *key, plan.status)
        if self.events.get(key) is body:
            self.events.pop(key, None)
        if updated is None:
            return None
        if self.post_events:
            kind = "Warning" if plan.warning else "Normal"
            await self.kube.post_event(body, kind, plan.reason, plan.message)
        for match, run in zip(plan.matches, plan.runs, strict=True):
            self.note_run((info.namespace, match.workflow), match.trigger, run["metadata"]["name"])
        handled = event_info(updated).handled_at or now()
        self._arm_retention(key, info.uid, handled)
        log.info("event %s/%s (%s): %s", *key, info.key, plan.message)
        return None

    def _arm_retention(self, key: Key, uid: str, handled_at: datetime) -> None:
        if key in self.retention:
            return
        self.retention[key] = uid
        due = events.deletion_due(handled_at, self.event_retention)
        self.expiry.wake(key, (due - now()).total_seconds())

    async def _expire(self, key: Key) -> float | None:
        """Delete this very event once its retention ran out (a failure retries in 60 s)."""
        uid = self.retention.get(key)
        if uid is not None:
            await self.kube.delete_custom(wire.WORKFLOW_EVENTS, key[0], key[1], uid)
            self.retention.pop(key, None)
        return None
