"""Every kopf handler of the operator: thin adapters from watch events to the controllers.

Only `@kopf.on.event` is used: it keeps no per-handler progress in annotations (no
extra writes per change), and the initial listing after a restart replays every object,
which is all the controllers need to carry on from the cluster state alone. What the
handlers share lives in one `Runtime` (runtime.py), made at start-up and passed through
kopf's ``memo``: no module-level state, no handler module importing another. Step Jobs
and outputs are not kopf's: the runtime streams them itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any, cast

import kopf

from kubehatch.api import wire
from kubehatch.api.workflowapproval import WORKFLOW_APPROVALS
from kubehatch_operator import metrics
from kubehatch_operator.entries import Key, WorkflowEntry
from kubehatch_operator.listing import LIST_PAGE
from kubehatch_operator.runtime import RELIST_SECONDS, Runtime
from kubehatch_operator.settings import Settings

MANAGED = {wire.LABEL_MANAGED_BY: wire.MANAGED_BY}
log = logging.getLogger(__name__)


def _deleted(event: kopf.RawEvent) -> bool:
    return event.get("type") == "DELETED"


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
    selector = await runtime.probe_selector(own.api.namespaces)
    if selector is not None:
        # Finished runs never change again: kopf neither lists nor remembers them.
        settings.watching.field_selectors[wire.GROUP, wire.WORKFLOW_RUNS] = selector
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
    memo.runtime = runtime


@kopf.on.probe(id="runs")
def runs_in_flight(memo: Any, **_: Any) -> int:
    return len(memo.runtime.store.runs)


# --- runs ----------------------------------------------------------------------------------
@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKFLOW_RUNS)
async def on_run(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo.runtime.run_changed(_body(event), _deleted(event))


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
    runtime.workflow_changed(key, spec_changed=not same_spec, before=before)


def _generation(entry: WorkflowEntry) -> object:
    return entry.body["metadata"].get("generation")


@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKFLOW_EVENTS)
async def on_workflow_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo.runtime.triggers.observe_event(_body(event), deleted=_deleted(event))
    if not _deleted(event):
        memo.runtime.event_arrived(_body(event))


@kopf.on.event(wire.GROUP, wire.VERSION, WORKFLOW_APPROVALS)
async def on_workflow_approval(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo.runtime.approval_arrived(_body(event), deleted=_deleted(event))


# --- worker pools -------------------------------------------------------------------------
@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKER_POOLS)
async def on_worker_pool(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    await memo.runtime.pools.pool_changed(_body(event), _deleted(event))


@kopf.on.event("batch", "v1", "cronjobs", labels=MANAGED)
async def on_cronjob(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo.runtime.triggers.observe_cronjob(_body(event), deleted=_deleted(event))
