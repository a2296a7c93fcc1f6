"""Child runs on a real cluster: a step spawns runs of another workflow and waits for them.

Hatchet's fan-out: a parent step spawns 10 runs of a child workflow (each returns
{"value": i}) and the next step sums their results. The children are owned by the parent
run; a spawn of a workflow the parent's ``spawns`` does not list fails the step; cancelling
the parent cancels its running children. The step pods keep their one right (creating
their own output): the operator creates the children.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from kubehatch import workflow_manifests
from kubehatch.api import spawns, wire
from tests.e2e import kube
from tests.e2e.support import wait_for
from tests.e2e.workers import children

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

MANIFESTS = {
    m["metadata"]["name"]: m
    for m in workflow_manifests(children.worker, worker_ref=children.WORKER_REF)
}


@pytest.fixture
def apply(op_namespace: str, step_image: str):
    def apply(*workflows: str) -> None:
        for workflow in workflows:
            kube.apply_workflow(op_namespace, MANIFESTS[workflow], step_image)

    return apply


def children_of(namespace: str, run: str) -> list[dict[str, Any]]:
    listed = client.CustomObjectsApi().list_namespaced_custom_object(
        wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_RUNS,
        label_selector=f"{wire.LABEL_PARENT_RUN}={run}",
    )  # fmt: skip
    return sorted(listed["items"], key=lambda r: r["metadata"]["name"])


def test_a_step_spawns_ten_children_and_the_next_step_sums_their_results(
    op_namespace: str, apply
) -> None:
    apply("child-value", "fan-out-parent")
    kube.create_run(op_namespace, "fan", "fan-out-parent", {"count": 10})
    body = kube.wait_for_phase(op_namespace, "fan", {"Succeeded", "Failed"}, timeout=240)
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    steps = status["steps"]
    assert steps["spawn"]["childRuns"] == 10
    assert kube.output(op_namespace, steps["sum"]["outputConfigMap"]) == {"total": 45, "count": 10}
    results = kube.output(op_namespace, steps["spawn"]["outputConfigMap"])
    assert results == [{"value": i} for i in range(10)]  # in order
    # ctx.spawn: the one child's result, not a list.
    assert kube.output(op_namespace, steps["show-one"]["outputConfigMap"]) == {"got": {"value": 42}}
    runs = children_of(op_namespace, "fan")
    assert len(runs) == 11
    for run in runs:
        meta = run["metadata"]
        [owner] = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "WorkflowRun",
            "fan",
            body["metadata"]["uid"],
        )
        assert meta["labels"][wire.LABEL_PARENT_STEP] in ("spawn", "spawn-one")
        assert run["status"]["phase"] == "Succeeded"
        assert run["spec"]["triggeredBy"]["type"] == "Parent"
    indexes = sorted(
        int(r["metadata"]["labels"][wire.LABEL_CHILD_INDEX])
        for r in runs
        if r["metadata"]["labels"][wire.LABEL_PARENT_STEP] == "spawn"
    )
    assert indexes == list(range(10))
    # The spawning step's own pod ran once; the children ran in pods of their own.
    assert kube.attempts_of(op_namespace, "fan").count(("spawn", "1")) == 1


def test_a_spawn_of_a_workflow_not_in_spawns_fails_the_step(op_namespace: str, apply) -> None:
    apply("child-value", "child-slow", "unlisted-parent")
    kube.create_run(op_namespace, "unlisted", "unlisted-parent")
    status = kube.wait_for_phase(op_namespace, "unlisted", {"Succeeded", "Failed"})["status"]
    assert status["phase"] == "Failed"
    message = status["steps"]["spawn"]["message"]
    assert "may not spawn workflow 'child-slow'" in message
    assert "spec.spawns lists child-value" in message and "add 'child-slow'" in message
    assert children_of(op_namespace, "unlisted") == []


def test_a_spawn_in_a_workflow_without_spawns_fails_the_step(op_namespace: str, apply) -> None:
    apply("child-value", "no-spawns-parent")
    kube.create_run(op_namespace, "nospawns", "no-spawns-parent")
    status = kube.wait_for_phase(op_namespace, "nospawns", {"Succeeded", "Failed"})["status"]
    assert status["phase"] == "Failed", status
    step = status["steps"]["spawn"]
    assert step["message"] == (
        "it may not spawn workflow 'child-value': its Workflow's spec.spawns lists nothing; "
        "add 'child-value' to spec.spawns (WorkflowJob(spawns=[...]) in Python)"
    )
    assert children_of(op_namespace, "nospawns") == []
    # The step pod marked its output as a spawn request: what the operator reads.
    head = client.CoreV1Api().read_namespaced_config_map(
        wire.output_configmap_name(step["jobName"]), op_namespace
    )
    assert (head.metadata.annotations or {}).get(spawns.ANNOTATION_SPAWN_REQUEST) == "true"


def test_cancelling_a_parent_cancels_its_running_children(op_namespace: str, apply) -> None:
    apply("child-slow", "slow-parent")
    kube.create_run(op_namespace, "slow", "slow-parent")

    def children_running() -> list[dict[str, Any]] | None:
        runs = children_of(op_namespace, "slow")
        phases = [(r.get("status") or {}).get("phase") for r in runs]
        return runs if len(runs) == 2 and phases == ["Running", "Running"] else None

    wait_for(children_running, 120, "two running child runs")
    step = kube.get_run(op_namespace, "slow")["status"]["steps"]["spawn"]
    assert step["phase"] == "Running"
    assert step["message"] == "waiting for 2 child runs (0 finished)"
    client.CustomObjectsApi().patch_namespaced_custom_object(
        wire.GROUP, wire.VERSION, op_namespace, wire.WORKFLOW_RUNS, "slow",
        {"spec": {"cancel": True}},
    )  # fmt: skip
    kube.wait_for_phase(op_namespace, "slow", {"Cancelled"}, timeout=60)

    def children_cancelled() -> bool:
        runs = children_of(op_namespace, "slow")
        return all((r.get("status") or {}).get("phase") == "Cancelled" for r in runs)

    wait_for(children_cancelled, 60, "the child runs to be cancelled")
    assert all(r["spec"]["cancel"] for r in children_of(op_namespace, "slow"))
