"""Steps on a WorkerPool, on the real cluster: warm `kubehatch worker` pods claim the
steps' WorkerTasks through the API server and run them, without a pod per step.

- A chain of five steps runs on a pool of two workers and succeeds with every output
  handed on; the run's status reads as in Job mode, and no step Job is made.
- A worker SIGKILLed (its pod force-deleted) in the middle of a step: after its lease
  lapses the step runs again on the other worker, as a new attempt, and the run succeeds.
- A run cancelled while its step runs on a worker ends Cancelled, and the step saw it.
- The same module runs in both modes: one step of a pool workflow in a Job of its own.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client

from kubehatch import workflow_manifests
from tests.e2e import kube
from tests.e2e.support import kubehatch, wait_for
from tests.e2e.workers import pools

pytestmark = pytest.mark.e2e

GROUP, VERSION = "kubehatch.dev", "v1alpha1"
MANIFESTS = {m["metadata"]["name"]: m for m in workflow_manifests(pools.worker)}
LEASE_SECONDS = 4


@pytest.fixture
def pool_namespace(op_namespace: str) -> str:
    kube.create_worker_service_account(op_namespace)
    return op_namespace


def create_pool(namespace: str, image: str, replicas: int = 2) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkerPool",
        "metadata": {"name": "fast"},
        "spec": {
            "image": image,
            "worker": pools.WORKER_REF,
            "replicas": replicas,
            "slots": 4,
            "leaseSeconds": LEASE_SECONDS,
        },
    }
    client.CustomObjectsApi().create_namespaced_custom_object(
        GROUP, VERSION, namespace, "workerpools", body
    )

    def ready() -> dict[str, Any] | None:
        pool = client.CustomObjectsApi().get_namespaced_custom_object(
            GROUP, VERSION, namespace, "workerpools", "fast"
        )
        status = pool.get("status") or {}
        return pool if status.get("readyReplicas", 0) >= replicas else None

    wait_for(ready, 180, f"WorkerPool {namespace}/fast to have {replicas} ready workers")


def apply(namespace: str, workflow: str, image: str, **spec: Any) -> None:
    manifest = MANIFESTS[workflow]
    manifest = {
        **manifest,
        "spec": {**manifest["spec"], "worker": pools.WORKER_REF, "pool": "fast", **spec},
    }
    kube.apply_workflow(namespace, manifest, image)


def tasks_of(namespace: str, run: str) -> list[dict[str, Any]]:
    listed = client.CustomObjectsApi().list_namespaced_custom_object(
        GROUP, VERSION, namespace, "workertasks", label_selector=f"kubehatch.dev/run={run}"
    )
    return sorted(listed["items"], key=lambda t: t["metadata"]["creationTimestamp"])


def worker_logs(namespace: str) -> str:
    core = client.CoreV1Api()
    pods = core.list_namespaced_pod(namespace, label_selector="kubehatch.dev/pool=fast").items
    return "\n".join(core.read_namespaced_pod_log(p.metadata.name, namespace) for p in pods)


def test_a_chain_runs_on_warm_workers_with_outputs_handed_on(
    operator: object, pool_namespace: str, step_image: str
) -> None:
    ns = pool_namespace
    create_pool(ns, step_image)
    apply(ns, "pool-chain", step_image)
    run = f"chain-{uuid.uuid4().hex[:6]}"
    kube.create_run(ns, run, "pool-chain", {"start": 10})
    done = kube.wait_for_phase(ns, run, {"Succeeded", "Failed"}, timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    steps = done["status"]["steps"]
    assert [kube.output(ns, steps[f"s{i}"]["outputConfigMap"])["n"] for i in range(1, 6)] == [
        11, 12, 13, 14, 15,
    ]  # fmt: skip
    assert kube.jobs_of(ns, run) == []  # no pod per step
    found = tasks_of(ns, run)
    assert [t["status"]["phase"] for t in found] == ["Succeeded"] * 5
    assert {t["status"]["worker"] for t in found} <= {
        p.metadata.name
        for p in client.CoreV1Api()
        .list_namespaced_pod(ns, label_selector="kubehatch.dev/pool=fast")
        .items
    }
    # As in Job mode: `kubehatch describe` reads the run the same way.
    described = kubehatch("describe", run, "-n", ns)
    assert described.returncode == 0, described.stderr
    assert "s5" in described.stdout and "Succeeded" in described.stdout
    # `kubehatch logs` shows each step's lines of its worker's log.
    logs = kubehatch("logs", run, "s3", "-n", ns)
    assert logs.returncode == 0, logs.stderr
    assert "step s3 succeeded" in logs.stdout and "step s2 succeeded" not in logs.stdout


def test_one_step_of_a_pool_workflow_runs_in_a_job_of_its_own(
    operator: object, pool_namespace: str, step_image: str
) -> None:
    ns = pool_namespace
    create_pool(ns, step_image, replicas=1)
    manifest = MANIFESTS["pool-chain"]
    steps = [{**s, "pool": ""} if s["name"] == "s3" else s for s in manifest["spec"]["steps"]]
    apply(ns, "pool-chain", step_image, steps=steps)
    run = f"mixed-{uuid.uuid4().hex[:6]}"
    kube.create_run(ns, run, "pool-chain", {"start": 0})
    done = kube.wait_for_phase(ns, run, {"Succeeded", "Failed"}, timeout=180)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    last = kube.output(ns, done["status"]["steps"]["s5"]["outputConfigMap"])
    assert last["n"] == 5
    assert kube.attempts_of(ns, run) == [("s3", "1")]  # the one Job: s3's
    assert len(tasks_of(ns, run)) == 4


def test_a_step_whose_worker_is_killed_runs_again_on_the_other_worker(
    operator: object, pool_namespace: str, step_image: str
) -> None:
    ns = pool_namespace
    create_pool(ns, step_image)
    apply(ns, "pool-slow", step_image)
    run = f"killed-{uuid.uuid4().hex[:6]}"
    kube.create_run(ns, run, "pool-slow", {"sleep": 60})

    def claimed() -> str | None:
        found = tasks_of(ns, run)
        status = (found[0].get("status") or {}) if found else {}
        return status.get("worker") if status.get("phase") == "Running" else None

    victim = wait_for(claimed, 60, "a worker to claim the step")
    # No grace period: the kubelet SIGKILLs the worker, which cannot report anything.
    client.CoreV1Api().delete_namespaced_pod(victim, ns, grace_period_seconds=0)
    done = kube.wait_for_phase(ns, run, {"Succeeded", "Failed"}, timeout=90)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    step = done["status"]["steps"]["slow"]
    assert step["attempts"] == 2
    first, second = tasks_of(ns, run)
    assert first["status"]["reason"] == "WorkerLost" and first["status"]["worker"] == victim
    assert second["status"]["worker"] != victim
    assert kube.output(ns, step["outputConfigMap"])["attempt"] == 2


def test_a_cancelled_run_stops_its_step_on_the_worker_and_the_step_sees_it(
    operator: object, pool_namespace: str, step_image: str
) -> None:
    ns = pool_namespace
    create_pool(ns, step_image, replicas=1)
    apply(ns, "pool-cancel", step_image)
    run = f"cancel-{uuid.uuid4().hex[:6]}"
    kube.create_run(ns, run, "pool-cancel")

    def running() -> bool:
        found = tasks_of(ns, run)
        return bool(found) and (found[0].get("status") or {}).get("phase") == "Running"

    wait_for(running, 60, "the step to run on the worker")
    cancelled = kubehatch("cancel", run, "-n", ns)
    assert cancelled.returncode == 0, cancelled.stderr
    done = kube.wait_for_phase(ns, run, {"Cancelled", "Succeeded", "Failed"}, timeout=60)
    assert done["status"]["phase"] == "Cancelled", done["status"]
    wait_for(
        lambda: f"saw the cancellation in run {run}" in worker_logs(ns),
        30,
        "the step to say it saw the cancellation",
    )
