"""kopf handlers: thin adapters from watch events to the store and the reconciler.

Only `@kopf.on.event` is used: it keeps no per-handler progress in annotations (no
extra writes per change), and the initial listing after a restart replays every object,
which is all the reconciler needs to carry on from the cluster state alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import importlib.util
import logging
import os
from typing import Any

import kopf

from kubehatch.api import wire
from kubehatch_operator import metrics
from kubehatch_operator.kube import Kube, load_config
from kubehatch_operator.reconciler import Reconciler
from kubehatch_operator.settings import Settings
from kubehatch_operator.store import Store


class Runtime:
    """What the handlers share within one operator process."""

    store: Store
    reconciler: Reconciler


runtime = Runtime()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    own = Settings.from_env()
    # kopf posts Events for its own handler errors; ours are posted by the reconciler.
    settings.posting.level = logging.WARNING
    # One log line per watch event is noise at this rate; failures still log as errors.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.execution.max_workers = own.api_workers
    # With exact namespaces only (see __main__), nothing cluster-wide needs scanning.
    settings.scanning.disabled = os.environ.get("KUBEHATCH_SCAN_CLUSTER") == "false"
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            max_workers=own.api_workers, thread_name_prefix="kube"
        )
    )
    metrics.serve(own.metrics_port)
    runtime.store = Store()
    runtime.reconciler = Reconciler(runtime.store, Kube(load_config(own.api_workers)), own)


@kopf.on.probe(id="runs")
def runs_in_flight(**_: Any) -> int:
    return len(runtime.store.runs)


def _deleted(event: dict[str, Any]) -> bool:
    return event.get("type") == "DELETED"


@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKFLOW_RUNS)
async def on_run(event: dict[str, Any], **_: Any) -> None:
    body = event["object"]
    key = runtime.store.observe_run(body, deleted=_deleted(event))
    metrics.RUNS_IN_FLIGHT.set(len(runtime.store.runs))
    if key in runtime.store.runs:
        runtime.reconciler.kick(key)
        return
    workflow = (key[0], (body.get("spec") or {}).get("workflowRef", {}).get("name", ""))
    if key in runtime.store.finished:
        runtime.reconciler.sweep_soon(workflow)
    # Finished or deleted: a slot of the workflow's concurrency limit may have freed up.
    for waiting in runtime.store.runs_waiting_for(workflow):
        runtime.reconciler.kick(waiting)


@kopf.on.event("batch", "v1", "jobs", labels={wire.LABEL_MANAGED_BY: wire.MANAGED_BY})
async def on_job(event: dict[str, Any], **_: Any) -> None:
    key = runtime.store.observe_job(event["object"], deleted=_deleted(event))
    if key is not None and key in runtime.store.runs:
        runtime.reconciler.kick(key)


@kopf.on.event(wire.GROUP, wire.VERSION, wire.WORKFLOWS)
async def on_workflow(event: dict[str, Any], **_: Any) -> None:
    key = runtime.store.observe_workflow(event["object"], deleted=_deleted(event))
    for run in runtime.store.runs_waiting_for(key):
        runtime.reconciler.kick(run)
    runtime.reconciler.sweep_soon(key)


# Trigger handlers (events, cron schedules, one-off times) live in their own package.
if importlib.util.find_spec("kubehatch_operator.triggers") is not None:
    importlib.import_module("kubehatch_operator.triggers.handlers")
