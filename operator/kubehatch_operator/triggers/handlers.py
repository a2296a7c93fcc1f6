"""kopf handlers for triggers: read, decide (the pure modules), write.

Registered by ``kubehatch_operator.handlers``, which imports this module. Like the run
handlers, only ``@kopf.on.event`` is used: the initial listing after a restart replays
every Workflow, WorkflowEvent and CronJob, so all state below is rebuilt from the cluster
(due one-off times fire, unhandled events are handled, retention timers are re-armed).

Work is serialised per object and coalesced (``KeyedWorker``): a Workflow is synced by
one task at a time however many watch events, event runs and timers ask for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from kubehatch.api import wire
from kubehatch.durations import parse_duration
from kubehatch_operator.patches import merge_patch
from kubehatch_operator.store import newer
from kubehatch_operator.triggers import events, schedules
from kubehatch_operator.triggers.crons import (
    TriggerPod,
    desired_cronjobs,
    last_cron_run,
    plan_cronjobs,
)
from kubehatch_operator.triggers.kubeio import TriggerKube
from kubehatch_operator.triggers.model import Key, event_info, workflow_info
from kubehatch_operator.triggers.status import (
    readiness,
    ready_changed,
    status_differs,
    workflow_status,
)

log = logging.getLogger(__name__)

TRIGGER_IMAGE_ENV = "KUBEHATCH_TRIGGER_IMAGE"
TRIGGER_SERVICE_ACCOUNT_ENV = "KUBEHATCH_TRIGGER_SERVICE_ACCOUNT"
EVENT_RETENTION_ENV = "KUBEHATCH_EVENT_RETENTION"
DEFAULT_EVENT_RETENTION = "1h"
RETRY_SECONDS = 5.0


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TriggerSettings:
    pod: TriggerPod
    event_retention: timedelta
    post_events: bool = True

    @classmethod
    def from_env(cls, run_as_user: int = 65532, post_events: bool = True) -> TriggerSettings:
        env = os.environ
        retention = env.get(EVENT_RETENTION_ENV) or DEFAULT_EVENT_RETENTION
        try:
            event_retention = parse_duration(retention)
        except ValueError as err:
            raise ValueError(
                f"{EVENT_RETENTION_ENV}={retention!r} is not a duration; set it like 1h or 30m"
            ) from err
        return cls(
            pod=TriggerPod(
                image=env.get(TRIGGER_IMAGE_ENV) or None,
                service_account=env.get(TRIGGER_SERVICE_ACCOUNT_ENV) or "kubehatch-trigger",
                run_as_user=run_as_user,
            ),
            event_retention=event_retention,
            post_events=post_events,
        )


class KeyedWorker:
    """Runs ``work(key)`` at most once at a time per key; kicks meanwhile fold into one more.

    ``work`` returns the number of seconds after which to run again (or None); a failure
    is logged and retried after ``RETRY_SECONDS``.
    """

    def __init__(self, what: str, work: Callable[[Key], Awaitable[float | None]]) -> None:
        self.what = what
        self.work = work
        self._active: dict[Key, asyncio.Task[None]] = {}
        self._dirty: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def kick(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        self._active[key] = asyncio.get_running_loop().create_task(self._drain(key))

    def wake(self, key: Key, delay: float) -> None:
        self.cancel(key)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(delay, 0.0), self._fired, key)

    def cancel(self, key: Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _fired(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.kick(key)

    async def _drain(self, key: Key) -> None:
        try:
            while True:
                self._dirty.discard(key)
                try:
                    delay = await self.work(key)
                except Exception:
                    log.exception(
                        "%s %s/%s failed; retrying in %ss", self.what, *key, RETRY_SECONDS
                    )
                    delay = RETRY_SECONDS
                if delay is not None:
                    self.wake(key, delay)
                if key not in self._dirty:
                    return
        finally:
            self._active.pop(key, None)


class Triggers:
    """The triggers' state within one operator process (rebuilt from watch events)."""

    def __init__(self, kube: TriggerKube, settings: TriggerSettings) -> None:
        self.kube = kube
        self.settings = settings
        self.workflows: dict[Key, dict[str, Any]] = {}
        self.events: dict[Key, dict[str, Any]] = {}
        self.last_runs: dict[Key, dict[str, str]] = defaultdict(dict)
        """Per workflow, runs made by triggers that its status does not show yet."""
        self.cron_synced: dict[Key, tuple[Any, ...]] = {}
        self.cron_errors: dict[Key, list[str]] = {}
        self.retention: dict[Key, asyncio.TimerHandle] = {}
        self.workflow_worker = KeyedWorker("syncing the triggers of workflow", self.sync_workflow)
        self.event_worker = KeyedWorker("handling event", self.handle_event)

    # --- Workflows ------------------------------------------------------------------------
    def observe_workflow(self, body: dict[str, Any], deleted: bool = False) -> Key:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if deleted:
            self.workflows.pop(key, None)
            self.last_runs.pop(key, None)
            self.cron_synced.pop(key, None)
            self.cron_errors.pop(key, None)
            self.workflow_worker.cancel(key)
        elif newer(body, self.workflows.get(key)):
            self.workflows[key] = body
        return key

    async def sync_workflow(self, key: Key) -> float | None:
        """CronJobs, due one-off times and status for one Workflow; seconds to the next time."""
        body = self.workflows.get(key)
        if body is None:
            return None
        workflow = workflow_info(body)
        await self._sync_cronjobs(key, workflow)
        when = now()
        plan = schedules.plan_at(workflow, when)
        recorded = dict(self.last_runs.get(key, {}))
        last = {**workflow.last_triggered, **recorded}
        for at in plan.fire:
            run = schedules.at_run(workflow, at)
            created = await self.kube.create_run(run)
            last[schedules.at_key(at)] = run["metadata"]["name"]
            log.info(
                "workflow %s/%s: time %s %s run %s", *key, at.isoformat(),
                "created" if created else "had already created", run["metadata"]["name"],
            )  # fmt: skip
        ready = readiness(
            workflow,
            image_missing=not self.settings.pod.image,
            cron_errors=self.cron_errors.get(key, ()),
        )
        new = workflow_status(workflow, when, ready=ready, last_triggered=last)
        if status_differs(workflow.status, new):
            old = {k: workflow.status[k] for k in new if k in workflow.status}
            updated = await self.kube.patch_workflow_status(*key, merge_patch(old, new))
            if updated is None:
                return None
            self.observe_workflow(updated)
            if self.settings.post_events and ready_changed(workflow.status, new):
                kind = "Normal" if ready.status == "True" else "Warning"
                await self.kube.post_event(body, kind, ready.reason, ready.message)
        for trigger, run in recorded.items():
            if self.last_runs.get(key, {}).get(trigger) == run:
                del self.last_runs[key][trigger]
        if plan.pending:
            return max((plan.pending[0] - now()).total_seconds(), 0.0)
        return None

    async def _sync_cronjobs(self, key: Key, workflow: Any) -> None:
        """Make the workflow's CronJobs match its spec (once per generation and settings)."""
        fingerprint = (workflow.uid, workflow.generation, workflow.crons, self.settings.pod)
        if self.cron_synced.get(key) == fingerprint:
            return
        desired = desired_cronjobs(workflow, self.settings.pod)
        if desired is None:  # no trigger image: the Ready condition says so
            return
        existing = await self.kube.list_cronjobs(*key)
        plan = plan_cronjobs(desired, existing)
        errors = []
        writes = [(self.kube.create_cronjob, b) for b in plan.create]
        writes += [(self.kube.replace_cronjob, b) for b in plan.replace]
        for write, body in writes:
            try:
                await write(body)
            except ApiException as err:
                if err.status not in (400, 422):
                    raise
                schedule = body["spec"]["schedule"]
                errors.append(
                    f"the API server refused the CronJob for {schedule!r}: {_api_message(err)}"
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
        body = self.workflows.get(workflow)
        shown = ((body or {}).get("status") or {}).get("lastTriggered") or {}
        if shown.get(trigger) != run:
            self.last_runs[workflow][trigger] = run
            if body is not None:
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
            workflow = self.workflows.get(key)
            # Not for a Workflow on its way out: the garbage collector is deleting its CronJobs.
            if workflow is not None and not workflow["metadata"].get("deletionTimestamp"):
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
            timer = self.retention.pop(key, None)
            if timer is not None:
                timer.cancel()
            return
        if info.handled_at is not None:
            self.events.pop(key, None)
            self._arm_retention(key, info.uid, info.handled_at)
            return
        self.events[key] = body
        self.event_worker.kick(key)

    async def handle_event(self, key: Key) -> float | None:
        """Create the event's runs (deterministic names: a replay makes none twice)."""
        body = self.events.get(key)
        if body is None:
            return None
        info = event_info(body)
        workflows = [workflow_info(w) for w in await self.kube.list_workflows(info.namespace)]
        plan = events.plan_event(info, workflows, now())
        await asyncio.gather(*(self.kube.create_run(run) for run in plan.runs))
        updated = await self.kube.patch_event_status(*key, plan.status)
        if self.events.get(key) is body:
            self.events.pop(key, None)
        if updated is None:
            return None
        if self.settings.post_events:
            kind = "Warning" if plan.warning else "Normal"
            await self.kube.post_event(body, kind, plan.reason, plan.message)
        for match, run in zip(plan.matches, plan.runs, strict=True):
            self.note_run(
                (info.namespace, match.workflow), f"event:{match.pattern}", run["metadata"]["name"]
            )
        handled = event_info(updated).handled_at or now()
        self._arm_retention(key, info.uid, handled)
        log.info("event %s/%s (%s): %s", *key, info.key, plan.message)
        return None

    def _arm_retention(self, key: Key, uid: str, handled_at: datetime) -> None:
        if key in self.retention:
            return
        due = events.deletion_due(handled_at, self.settings.event_retention)
        delay = max((due - now()).total_seconds(), 0.0)
        loop = asyncio.get_running_loop()
        self.retention[key] = loop.call_later(delay, self._expire, key, uid)

    def _expire(self, key: Key, uid: str) -> None:
        async def delete() -> None:
            try:
                await self.kube.delete_event(key[0], key[1], uid)
            except Exception:
                log.exception("deleting handled event %s/%s failed; retrying later", *key)
                loop = asyncio.get_running_loop()
                self.retention[key] = loop.call_later(60, self._expire, key, uid)
                return
            self.retention.pop(key, None)

        asyncio.get_running_loop().create_task(delete())


def _api_message(err: ApiException) -> str:
    """The Status message of an API error (its body is JSON), else the raw reason."""
    try:
        return str(json.loads(err.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{err.status} {err.reason}"


_state: Triggers | None = None


def state() -> Triggers:
    """The triggers' state, made on first use from the operator's shared runtime."""
    global _state
    if _state is None:
        from kubehatch_operator.handlers import runtime

        settings = runtime.reconciler.settings
        _state = Triggers(
            TriggerKube(runtime.reconciler.kube),
            TriggerSettings.from_env(settings.step_run_as_user, settings.post_events),
        )
    return _state


def _deleted(event: dict[str, Any]) -> bool:
    return event.get("type") == "DELETED"


@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKFLOWS, id="triggers-workflows")
async def on_workflow_triggers(event: dict[str, Any], **_: Any) -> None:
    triggers = state()
    key = triggers.observe_workflow(event["object"], deleted=_deleted(event))
    if key in triggers.workflows:
        triggers.workflow_worker.kick(key)


@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKFLOW_EVENTS, id="triggers-events")
async def on_workflow_event(event: dict[str, Any], **_: Any) -> None:
    state().observe_event(event["object"], deleted=_deleted(event))


@kopf.on.event(
    "batch", "v1", "cronjobs",
    labels={wire.LABEL_MANAGED_BY: wire.MANAGED_BY}, id="triggers-cronjobs",
)  # fmt: skip
async def on_cronjob(event: dict[str, Any], **_: Any) -> None:
    state().observe_cronjob(event["object"], deleted=_deleted(event))
