"""What the handlers share within one operator process, and how it is kept in step with
the cluster: the store, the controllers, and the listings and watches that feed them.

kopf watches runs, Workflows, WorkflowEvents, WorkflowApprovals and CronJobs (see
handlers.py). Step Jobs and step outputs are streamed by the operator itself (see
watching.py), from the listing that primed the store, so that nothing between the two is
missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from kubehatch.api import wire
from kubehatch.api.workflowrun import WorkflowRunPhase
from kubehatch_operator import metrics
from kubehatch_operator.clock import now
from kubehatch_operator.entries import Key, WorkflowEntry, is_shared
from kubehatch_operator.kube import Kube, load_config
from kubehatch_operator.outputs import output_watch
from kubehatch_operator.pools import PoolController
from kubehatch_operator.reconciler import Reconciler
from kubehatch_operator.relisting import Relisting
from kubehatch_operator.retry_requests import carry_out, retry_watch
from kubehatch_operator.settings import Settings
from kubehatch_operator.store import Store
from kubehatch_operator.triggers.controller import Triggers
from kubehatch_operator.watching import Feed, Follower, Scope

log = logging.getLogger(__name__)

UNFINISHED_RUNS = ",".join(
    f"status.phase!={phase}" for phase in sorted(p.value for p in WorkflowRunPhase if p.finished)
)
"""The field selector of runs that can still change (the CRD serves status.phase)."""

JOBS = f"{wire.LABEL_MANAGED_BY}={wire.MANAGED_BY}"

RELIST_SECONDS = 60.0
"""How often the operator compares its store with a listing of unfinished runs (served
from the API server's watch cache), bounding how long a deletion missed by a watch can
matter."""
FULL_RELIST_EVERY = 10
"""Every this many relistings, all runs and Jobs are listed: finished runs and Jobs
deleted by others leave the store."""


@dataclass
class Runtime:
    store: Store
    reconciler: Reconciler
    triggers: Triggers
    unfinished: str | None = None
    pools: PoolController | None = None
    tasks_at: int = 0
    """The resourceVersion the latest listing of WorkerTasks covers."""
    """The field selector of unfinished runs, where the API server supports it."""
    background: list[asyncio.Task[None]] = field(default_factory=list)
    _retrying: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        store = Store()
        kube = Kube(load_config(settings.api.workers))
        reconciler = Reconciler(store, kube, settings)
        store.on_leave = reconciler.slots.run_left
        runtime = cls(store, reconciler, Triggers(store, kube, settings))
        runtime.triggers.run_created = lambda body: runtime.run_changed(body, deleted=False)
        runtime.pools = PoolController(store, kube, settings.steps)
        return runtime

    @property
    def kube(self) -> Kube:
        return self.reconciler.kube

    async def probe_selector(self, namespaces: tuple[str, ...]) -> str | None:
        """UNFINISHED_RUNS if the API server can select runs by phase (the CRD's
        selectableFields, Kubernetes 1.31+), else None: then every run is watched."""
        while True:
            try:
                supported = await self.kube.lister.selects(
                    wire.WORKFLOW_RUNS, namespaces, UNFINISHED_RUNS
                )
                break
            except Exception as err:  # the API server may be restarting
                log.warning("probing field selectors failed (%s); retrying in 2s", err)
                await asyncio.sleep(2.0)
        if not supported:
            log.info("the API server cannot select runs by phase: watching finished runs too")
        self.unfinished = UNFINISHED_RUNS if supported else None
        return self.unfinished

    async def prime(self, namespaces: tuple[str, ...]) -> None:
        """Fill the store from full listings before any handler runs, then follow Jobs
        and outputs from there.

        kopf hands its first listing over one object at a time, name by name: a queued
        run listed before the running ones would be admitted against a store that does
        not know them yet. So the operator lists Workflows, runs and Jobs itself, first.
        """
        workflows, _ = await self.kube.lister.objects(wire.WORKFLOWS, namespaces)
        for body in workflows:
            self.store.observe_workflow(body)
        # Finished runs matter to retention only: with a selector, they are listed after
        # start-up, so that 20,000 of them do not delay it.
        jobs_at = await self.relist(namespaces, finished=self.unfinished is None, jobs=True)
        self.store.primed = True
        metrics.RUNS_IN_FLIGHT.set(len(self.store.runs))  # right from /healthz on
        self._follow_jobs(namespaces, jobs_at)
        if self.pools is not None:
            self.background.append(self.pools.count_every())
        api = self.kube.core.api_client
        output_watch(api, namespaces, self.output_written).start()
        retry_watch(api, namespaces, self.retry_requested).start()
        if self.unfinished is not None:
            task = asyncio.get_running_loop().create_task(self._list_finished(namespaces))
            self.background.append(task)

    async def _list_finished(self, namespaces: tuple[str, ...]) -> None:
        """Fill the store's finished runs, then apply every Workflow's retention."""
        delay = 1.0
        while True:
            try:
                await self.relist(namespaces, finished=True, jobs=False)
                break
            except Exception as err:
                log.warning("listing finished runs failed (%s); again in %.0fs", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        for workflow in list(self.store.workflows):
            self.reconciler.sweep_soon(workflow)

    async def relist(self, namespaces: tuple[str, ...], *, finished: bool, jobs: bool) -> int:
        """Agree with a fresh listing of the (unfinished, unless ``finished``) runs and,
        if ``jobs``, the step Jobs: what a re-listing watch misses. Returns how far the
        listing covers (a resourceVersion).

        The store drops nothing seen at a newer version than the listing covers.
        """
        lister = self.kube.lister
        selector = None if finished else self.unfinished
        relisting = Relisting(self.store, finished=selector is None, jobs=jobs)
        versions = [
            await lister.each_page(
                wire.WORKFLOW_RUNS, namespaces, relisting.runs, field_selector=selector,
            )
        ]  # fmt: skip
        if jobs:  # WorkerTasks are the Jobs of steps on pools: listed alike, before them
            self.tasks_at = await lister.each_page(wire.WORKER_TASKS, namespaces, relisting.jobs)
            versions.append(self.tasks_at)
            versions.append(await lister.each_page("jobs", namespaces, relisting.jobs))
        gone, changed = relisting.finish(min(versions))
        await self._linger(relisting.orphans)
        for entry in gone:
            log.info("run %s/%s is gone (deleted while the watch was down)", *entry.key)
            self.store.approvals.forget(entry.key)
            self.store.events.wait(entry.key, set())
        for key in changed & set(self.store.runs):
            self.reconciler.wake(key)
        return versions[-1]

    async def _linger(self, orphans: dict[str, list[dict[str, Any]]]) -> None:
        """Runs with live Jobs that the listing of unfinished runs lacks: finished while
        their last pod was still stopping (the process that saw it finish is gone). They
        hold their slot until those pods stop; read one by one (they are few)."""
        for uid, jobs in orphans.items():
            namespace = jobs[0]["metadata"]["namespace"]
            owner = wire.run_owner(jobs[0])
            if owner is None:
                continue
            body = await self.kube.read_run(namespace, owner[0])
            if body is not None and str(body["metadata"].get("uid")) == uid:
                self.store.linger(body, jobs)

    def relist_every(self, seconds: float, namespaces: tuple[str, ...]) -> None:
        async def loop() -> None:
            count = 0
            while True:
                await asyncio.sleep(seconds)
                count += 1
                full = count % FULL_RELIST_EVERY == 0
                self.store.rates.sweep(now())  # keys no run uses any more go
                try:
                    await self.relist(namespaces, finished=full, jobs=full)
                except Exception:
                    log.exception("relisting runs failed; trying again later")

        self.background.append(asyncio.get_running_loop().create_task(loop()))

    # --- step Jobs and outputs ------------------------------------------------------------
    def _follow_jobs(self, namespaces: tuple[str, ...], since: int) -> None:
        """Follow step Jobs and WorkerTasks (from what the listing covers): both are
        attempts, and both land in `job_changed`."""
        batch = client.BatchV1Api(self.kube.core.api_client)
        custom = self.kube.custom
        loop = asyncio.get_running_loop()

        def jobs(scope: Scope, options: dict[str, Any]) -> Any:
            if scope is None:
                return batch.list_job_for_all_namespaces(**options)
            return batch.list_namespaced_job(scope, **options)

        def tasks(scope: Scope, options: dict[str, Any]) -> Any:
            group, version, plural = wire.GROUP, wire.VERSION, wire.WORKER_TASKS
            if scope is None:
                return custom.list_cluster_custom_object(group, version, plural, **options)
            return custom.list_namespaced_custom_object(group, version, scope, plural, **options)

        def resume(kind: str) -> Callable[[Scope, str | None], str]:
            def from_version(_scope: Scope, last: str | None) -> str:
                if last:
                    return last
                # Expired: list again (what went meanwhile sent no DELETED event).
                relisted = self.relist(namespaces, finished=False, jobs=True)
                jobs_at = asyncio.run_coroutine_threadsafe(relisted, loop).result(timeout=600)
                return str(self.tasks_at if kind == "tasks" else jobs_at)

            return from_version

        feed = Feed("step Jobs", jobs, JOBS, self.job_changed, resume("jobs"))
        Follower(feed, namespaces).start(str(since))
        feed = Feed("WorkerTasks", tasks, JOBS, self.job_changed, resume("tasks"))
        Follower(feed, namespaces).start(str(self.tasks_at))

    def job_changed(self, kind: str, body: dict[str, Any]) -> None:
        key = self.store.observe_job(body, deleted=kind == "DELETED")
        if key is not None and key in self.store.runs:
            self.reconciler.kick(key)

    def output_written(self, meta: dict[str, Any]) -> None:
        key = self.store.observe_output(meta)
        if key is not None and key in self.store.runs:
            self.reconciler.kick(key)

    def event_arrived(self, body: dict[str, Any]) -> None:
        """A WorkflowEvent: the runs with a step waiting for its key take a pass."""
        for run in self.store.events.observe(body):
            if run in self.store.runs:
                self.reconciler.kick(run)
            else:
                self.store.events.wait(run, set())  # finished or gone meanwhile

    def approval_arrived(self, body: dict[str, Any], deleted: bool = False) -> None:
        """A WorkflowApproval (or its deletion): its run, if unfinished, takes a pass."""
        run = self.store.approvals.observe(body, deleted, runs=self.store.runs)
        if run is not None and run in self.store.runs:
            self.reconciler.kick(run)

    def retry_requested(self, kind: str, body: dict[str, Any]) -> None:
        if kind != "DELETED":
            task = asyncio.get_running_loop().create_task(carry_out(self.kube, body))
            self._retrying.add(task)
            task.add_done_callback(self._retrying.discard)

    # --- runs and Workflows ---------------------------------------------------------------
    def run_changed(self, body: dict[str, Any], deleted: bool) -> None:
        store = self.store
        meta = body["metadata"]
        if deleted and (meta["namespace"], meta["name"]) in store.finished:
            # Not gone: a finished run leaves the watch's selection of unfinished runs (the
            # API server sends its last unfinished state). Finished runs deleted by others
            # leave the store at the full relisting; the retention's own, at once.
            deleted = False
        key = store.observe_run(body, deleted=deleted)
        metrics.RUNS_IN_FLIGHT.set(len(store.runs))
        if key in store.runs:
            self.reconciler.wake(key)
            return
        store.approvals.forget(key)  # finished or gone: its approvals are of no more use
        store.events.wait(key, set())  # nor the events it waited for
        self.reconciler.spawns.wake_parent(body)  # a child run finished or went
        if key in store.finished:
            self.reconciler.sweep_soon((key[0], store.finished[key].workflow))

    def workflow_changed(
        self, key: Key, spec_changed: bool = True, before: WorkflowEntry | None = None
    ) -> None:
        """A Workflow appeared, changed or went: waiting runs, retention and triggers.

        A status-only change (the triggers' own writes) wakes no run: what runs wait
        for is the Workflow's existence and spec, whose changes bump its generation. The
        runs of the Workflows sharing a limit with it (``before`` the change, or now) are
        woken too: a disagreement between them may have ended.
        """
        if spec_changed:
            self.reconciler.slots.workflow_changed(key)
            workflows = {key}
            for entry in (before, self.store.workflows.get(key)):
                scope = entry.scope(key) if entry is not None else key
                if is_shared(scope):
                    workflows.update(self.store.sharing(scope))
            for workflow in sorted(workflows):
                for run in self.store.runs_waiting_for(workflow):
                    self.reconciler.wake(run, workflow_changed=True)
            self.reconciler.sweep_soon(key)
        self.triggers.workflow_changed(key)
