"""Large run inputs stay out of the operator's memory and are read when a pass needs them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubehatch.api import wire
from kubehatch_operator.entries import INLINE_INPUT_BYTES, RunEntry
from kubehatch_operator.reconciler import Reconciler
from kubehatch_operator.settings import ObservabilitySettings, Settings
from kubehatch_operator.store import Store
from tests.unit.operator.fakekube import FakeKube

BIG = {"blob": "x" * (INLINE_INPUT_BYTES + 1), "user": "ada"}


def run_body(name: str, value: dict[str, Any], status: dict[str, Any] | None = None) -> dict:
    return {
        "apiVersion": wire.API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {
            "name": name, "namespace": "ns", "uid": f"{name}-uid",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"workflowRef": {"name": "wf"}, "input": value},
        "status": status or {},
    }  # fmt: skip


def workflow(concurrency: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": "img:1",
        "service": "s",
        "steps": [{"name": "a", "action": "a"}],
    }
    if concurrency:
        spec["concurrency"] = concurrency
    return {"metadata": {"name": "wf", "namespace": "ns", "uid": "wf-uid"}, "spec": spec}


def test_the_store_keeps_small_inputs_and_leaves_large_ones_and_managed_fields_out() -> None:
    small = RunEntry.parse(run_body("small", {"user": "ada"}))
    assert small.run is not None and small.run.spec.input == {"user": "ada"}
    assert not small.input_elided and "managedFields" not in small.body["metadata"]
    big = RunEntry.parse(run_body("big", BIG))
    assert big.input_elided and big.input_bytes == len(json.dumps(BIG, separators=(",", ":")))
    assert big.run is not None and big.run.spec.input == {}
    assert "input" not in big.body["spec"] and big.body["spec"]["workflowRef"] == {"name": "wf"}


def reconcile(kube: FakeKube, store: Store, name: str) -> None:
    quiet = Settings(observability=ObservabilitySettings(post_events=False))
    reconciler = Reconciler(store, kube, quiet)  # type: ignore[arg-type]
    reconciler.queue.kick = lambda key: None  # type: ignore[method-assign]
    asyncio.run(reconciler.reconcile(("ns", name)))


def test_a_large_input_is_read_from_the_api_and_stored_whole_for_the_steps() -> None:
    kube, store = FakeKube(), Store()
    store.observe_workflow(workflow())
    store.observe_run(kube.add_run(run_body("big", BIG)))
    reconcile(kube, store, "big")
    assert kube.reads == [("get", "workflowruns", "big")]
    (stored,) = kube.configmaps.values()
    assert json.loads(stored["data"][wire.INPUT_KEY]) == BIG


def test_a_large_inputs_concurrency_key_is_computed_over_the_whole_input() -> None:
    limit = {"expression": "input.user", "maxRuns": 1, "limitStrategy": "QueueNewest"}
    kube, store = FakeKube(), Store()
    store.observe_workflow(workflow(limit))
    running = {"phase": "Running", "concurrencyKey": "ada", "workflowSpec": workflow()["spec"]}
    store.observe_run(kube.add_run(run_body("first", {"user": "ada"}, running)))
    store.observe_run(kube.add_run(run_body("big", BIG)))
    reconcile(kube, store, "big")
    status = kube.runs["big"]["status"]
    assert (status["phase"], status["concurrencyKey"]) == ("Queued", "ada")
