"""Every kopf handler of the operator: thin adapters from watch events to the controllers.

Only `@kopf.on.event` is used: it keeps no per-handler progress in annotations (no
extra writes per change), and the initial listing after a restart replays every object,
which is all the controllers need to carry on from the cluster state alone. What the
handlers share lives in one `Runtime`, made at start-up and passed through kopf's
``memo``: no module-level state, no handler module importing another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from kubehatch.api import wire
from kubehatch.api.workflowrun import WorkflowRunPhase
from kubehatch_operator import metrics
from kubehatch_operator.entries import Key, WorkflowEntry, workflow_of
from kubehatch_operator.kube import Kube, load_config
from kubehatch_operator.listing import LIST_PAGE
from kubehatch_operator.outputs import OutputWatch
from kubehatch_operator.reconciler import Reconciler
from kubehatch_operator.settings import Settings
from kubehatch_operator.store import Relisting, Store
from kubehatch_operator.triggers.controller import Triggers

MANAGED = {wire.LABEL_MANAGED_BY: wire.MANAGED_BY}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """What the handlers share within one operator process."""

    store: Store
    reconciler: Reconciler
    triggers: Triggers
    background: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        store = Store()
        kube = Kube(load_config(settings.api.workers))
        reconciler = Reconciler(store, kube, settings)
        store.on_leave = reconciler.slots.run_left
        return cls(store, reconciler, Triggers(store, kube, settings))

    async def prime(self, namespaces: tuple[str, ...]) -> None:
        """Fill the store from full listings before any handler runs.

        kopf hands its first listing over one object at a time, name by name: a queued
        run listed before the running ones would be admitted against a store that does
        not know them yet. So the operator lists Workflows, runs and Jobs itself, first.
        """
        workflows, _ = await self.reconciler.kube.lister.objects(wire.WORKFLOWS, namespaces)
        for body in workflows:
            self.store.observe_workflow(body)
        await self.relist(namespaces)
        self.store.primed = True

    async def relist(self, namespaces: tuple[str, ...], *, cached: bool = False) -> None:
        """Agree with a fresh listing of runs and Jobs (what a re-listing watch misses).

        The periodic relisting reads the API server's watch cache (``cached``): cheap, and
        the store drops nothing seen at a newer version than the listing covers.
        """
        lister, relisting = self.reconciler.kube.lister, Relisting(self.store)
        runs_at = await lister.each_page(
            wire.WORKFLOW_RUNS, namespaces, relisting.runs, cached=cached
        )
        jobs_at = await lister.each_page("jobs", namespaces, relisting.jobs, cached=cached)
        gone, changed = relisting.finish(min(runs_at, jobs_at))
        for entry in gone:
            log.info("run %s/%s is gone (deleted while the watch was down)", *entry.key)
        for key in changed & set(self.store.runs):
            self.reconciler.wake(key)

    def relist_every(self, seconds: float, namespaces: tuple[str, ...]) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await self.relist(namespaces, cached=True)
                except Exception:
                    log.exception("relisting runs and Jobs failed; trying again later")

        self.background.append(asyncio.get_running_loop().create_task(loop()))

    def watch_outputs(self, namespaces: tuple[str, ...]) -> None:
        """Start children the moment a step's output appears (see outputs.py)."""
        watch = OutputWatch(self.reconciler.kube.core.api_client, namespaces)
        watch.start(self.output_written)

    def output_written(self, meta: dict[str, Any]) -> None:
        key = self.store.observe_output(meta)
        if key is not None and key in self.store.runs:
            self.reconciler.kick(key)

    def workflow_changed(self, key: Key, spec_changed: bool = True) -> None:
        """A Workflow appeared, changed or went: waiting runs, retention and triggers.

        A status-only change (the triggers' own writes) wakes no run: what runs wait
        for is the Workflow's existence and spec, whose changes bump its generation.
        """
        if spec_changed:
            for run in self.store.runs_waiting_for(key):
                self.reconciler.wake(run, workflow_changed=True)
            self.reconciler.sweep_soon(key)
        self.triggers.workflow_changed(key)


def _deleted(event: kopf.RawEvent) -> bool:
    return event.get("type") == "DELETED"


def _finished(run: dict[str, Any]) -> bool:
    phase = wire.mapping(run.get("status")).get("phase")
    return phase in {p.value for p in WorkflowRunPhase if p.finished}


def _key(event: kopf.RawEvent) -> Key:
    meta = _body(event)["metadata"]
    return (meta["namespace"], meta["name"])


def _body(event: kopf.RawEvent) -> dict[str, Any]:
    """The object of a watch event, as the plain dict the API server sent."""
    return cast(dict[str, Any], event["object"])


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    own = Settings.from_env()
    # kopf posts Events for its own handler errors; ours are posted by the controllers.
    settings.posting.level = logging.WARNING
    # One log line per watch event is noise at this rate; failures still log as errors.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.execution.max_workers = own.api.workers
    # kopf's own first listing, in pages too: one response of 20,000 runs is a memory spike.
    settings.watching.chunk_size = LIST_PAGE
    # With exact namespaces only (see __main__), nothing cluster-wide needs scanning.
    settings.scanning.disabled = not own.api.scan_cluster
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            max_workers=own.api.workers, thread_name_prefix="kube"
        )
    )
    metrics.serve(own.observability.metrics_port)
    runtime = Runtime.start(own)
    await follow_unfinished_runs(settings, runtime.reconciler.kube, own.api.namespaces)
    delay = 1.0
    while True:  # the API server may be restarting: admit nothing until the listing works
        try:
            await runtime.prime(own.api.namespaces)
            break
        except Exception as err:
            log.warning("listing runs and Jobs failed (%s); retrying in %.0fs", err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
    runtime.relist_every(RELIST_SECONDS, own.api.namespaces)
    runtime.watch_outputs(own.api.namespaces)
    memo.runtime = runtime


async def follow_unfinished_runs(
    settings: kopf.OperatorSettings, kube: Kube, namespaces: tuple[str, ...]
) -> None:
    """Watch unfinished runs only, where the API server can select by status.phase (the
    CRD's selectableFields, Kubernetes 1.31+): thousands of finished runs then cost kopf
    no memory and a restart no work. The store learns of finished runs from its own
    listings and writes, and of their deletion from the periodic relisting."""
    finished = sorted(p.value for p in WorkflowRunPhase if p.finished)
    selector = ",".join(f"status.phase!={phase}" for phase in finished)
    while True:
        try:
            supported = await kube.lister.selects(wire.WORKFLOW_RUNS, namespaces, selector)
            break
        except Exception as err:  # the API server may be restarting
            log.warning("probing field selectors failed (%s); retrying in 2s", err)
            await asyncio.sleep(2.0)
    if supported:
        settings.watching.field_selectors[wire.GROUP, wire.WORKFLOW_RUNS] = selector
    else:
        log.info("the API server cannot select runs by phase: watching finished runs too")


RELIST_SECONDS = 60.0
"""How often the operator compares its store with a full listing (served from the API
server's watch cache), bounding how long a deletion missed by a watch can matter."""


@kopf.on.probe(id="runs")
def runs_in_flight(memo: Any, **_: Any) -> int:
    return len(memo.runtime.store.runs)


# --- runs and their Jobs ---------------------------------------------------------------------
@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKFLOW_RUNS)
async def on_run(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    store = runtime.store
    # A run that finished leaves the watch's selection (see `follow_unfinished_runs`): it
    # arrives as DELETED, with its final state.
    deleted = _deleted(event) and not _finished(_body(event))
    key = store.observe_run(_body(event), deleted=deleted)
    metrics.RUNS_IN_FLIGHT.set(len(store.runs))
    if key in store.runs:
        runtime.reconciler.wake(key)
        return
    workflow = workflow_of(_body(event))
    if key in store.finished:
        runtime.reconciler.sweep_soon(workflow)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def on_job(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    key = runtime.store.observe_job(_body(event), deleted=_deleted(event))
    if key is not None and key in runtime.store.runs:
        runtime.reconciler.kick(key)


# --- workflows, events and cron schedules ---------------------------------------------------
@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKFLOWS)
async def on_workflow(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    before = runtime.store.workflows.get(_key(event))
    key = runtime.store.observe_workflow(_body(event), _deleted(event))
    runtime.store.workflow_watch_at(_body(event))
    after = runtime.store.workflows.get(key)
    same_spec = (
        before is not None and after is not None and _generation(before) == _generation(after)
    )
    runtime.workflow_changed(key, spec_changed=not same_spec)


def _generation(entry: WorkflowEntry) -> object:
    return entry.body["metadata"].get("generation")


@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKFLOW_EVENTS)
async def on_workflow_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo.runtime.triggers.observe_event(_body(event), deleted=_deleted(event))


@kopf.on.event("batch", "v1", "cronjobs", labels=MANAGED)
async def on_cronjob(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo.runtime.triggers.observe_cronjob(_body(event), deleted=_deleted(event))
