"""The operator on a real cluster: runs go step by step as Jobs, with outputs in ConfigMaps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from kubernetes import client

from kubehatch import workflow_manifests
from tests.e2e import kube
from tests.e2e.support import wait_for
from tests.e2e.workers.dags import worker

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

MANIFESTS = {m["metadata"]["name"]: m for m in workflow_manifests(worker)}


@pytest.fixture
def run_workflow(op_namespace: str, step_image: str):
    """Apply a workflow of the e2e worker and start a run of it; returns the run name."""

    def start(workflow: str, input: dict[str, Any] | None = None, run: str = "run") -> str:
        kube.apply_workflow(op_namespace, MANIFESTS[workflow], step_image)
        kube.create_run(op_namespace, run, workflow, input)
        return run

    return start


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_two_step_workflow_hands_the_output_on(op_namespace: str, run_workflow) -> None:
    run = run_workflow("two-step-workflow", {"username": "ada"})
    body = kube.wait_for_phase(op_namespace, run, {"Succeeded", "Failed"})
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == "2/2"
    steps = status["steps"]
    assert kube.output(op_namespace, steps["step-one"]["outputConfigMap"]) == {
        "message": "Username is: ada"
    }
    assert kube.output(op_namespace, steps["step-two"]["outputConfigMap"]) == {
        "message": "Above message is: Username is: ada"
    }
    # Everything made for the run is owned by it.
    cms = client.CoreV1Api().list_namespaced_config_map(op_namespace).items
    ours = [cm for cm in cms if cm.metadata.name.startswith(f"{run}-")]
    assert len(ours) == 2  # two outputs: a small input travels in the pods' environment
    for obj in [*ours, *kube.jobs_of(op_namespace, run)]:
        assert obj.metadata.owner_references[0].kind == "WorkflowRun"
        assert obj.metadata.owner_references[0].uid == body["metadata"]["uid"]
    reasons = {
        e.reason
        for e in client.CoreV1Api().list_namespaced_event(op_namespace).items
        if e.involved_object.name == run
    }
    assert {"StepRunning", "StepSucceeded", "RunSucceeded"} <= reasons


def test_diamond_runs_branches_in_parallel_and_joins_both_outputs(
    op_namespace: str, run_workflow
) -> None:
    run = run_workflow("diamond", {"value": 5})
    status = kube.wait_for_phase(op_namespace, run, {"Succeeded", "Failed"})["status"]
    assert status["phase"] == "Succeeded", status
    outs = {s: kube.output(op_namespace, status["steps"][s]["outputConfigMap"]) for s in "abcd"}
    assert outs["d"]["total"] == (5 + 10) + (5 + 100)
    # b and c overlapped: each started before the other finished.
    assert outs["b"]["start"] < outs["c"]["at"] and outs["c"]["start"] < outs["b"]["at"]
    assert outs["d"]["at"] >= max(outs["b"]["at"], outs["c"]["at"])


def test_failing_step_is_retried_then_fails_the_run_and_skips_its_child(
    op_namespace: str, run_workflow
) -> None:
    run = run_workflow("failing")
    status = kube.wait_for_phase(op_namespace, run, {"Succeeded", "Failed"}, timeout=180)["status"]
    assert status["phase"] == "Failed"
    explode = status["steps"]["explode"]
    assert explode["phase"] == "Failed"
    assert explode["attempts"] == 3
    assert "ValueError: boom on attempt 3" in explode["message"]
    assert status["steps"]["child"]["phase"] == "Skipped"
    jobs = kube.attempts_of(op_namespace, run)
    assert jobs == [("explode", "1"), ("explode", "2"), ("explode", "3")]
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert (condition["status"], condition["reason"]) == ("False", "StepFailed")


def test_a_failing_branch_does_not_stop_an_independent_one(op_namespace: str, run_workflow) -> None:
    run = run_workflow("branches")
    status = kube.wait_for_phase(op_namespace, run, {"Succeeded", "Failed"}, timeout=120)["status"]
    steps = status["steps"]
    assert status["phase"] == "Failed", status
    assert {name: steps[name]["phase"] for name in steps} == {
        "boom": "Failed",
        "after-boom": "Skipped",
        "slow": "Succeeded",
        "after-slow": "Succeeded",
    }
    assert steps["after-boom"]["message"] == "not run: parent boom failed"
    assert kube.output(op_namespace, steps["after-slow"]["outputConfigMap"])["value"] == 14
    # The run ended once the other branch finished, not when boom failed.
    assert _time(status["finishedAt"]) >= _time(steps["after-slow"]["finishedAt"])
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "StepFailed"
    assert condition["message"].startswith("step boom failed: ValueError: step1 failed")


def test_with_fail_fast_the_first_failure_ends_the_run(op_namespace: str, run_workflow) -> None:
    run = run_workflow("branches-fail-fast")
    status = kube.wait_for_phase(op_namespace, run, {"Succeeded", "Failed"}, timeout=120)["status"]
    steps = status["steps"]
    assert status["phase"] == "Failed"
    assert steps["boom"]["phase"] == "Failed"
    assert steps["slow"]["phase"] == "Cancelled"
    assert {steps["after-boom"]["phase"], steps["after-slow"]["phase"]} == {"Skipped"}


def test_the_on_failure_step_runs_and_the_run_reports_the_failure(
    op_namespace: str, run_workflow
) -> None:
    run = run_workflow("on-failure")
    status = kube.wait_for_phase(op_namespace, run, {"Succeeded", "Failed"}, timeout=120)["status"]
    steps = status["steps"]
    assert status["phase"] == "Failed"
    assert {name: steps[name]["phase"] for name in steps} == {
        "step1": "Failed",
        "on-failure": "Succeeded",
    }
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert "step1 failed" in condition["message"]
    errors = kube.output(op_namespace, steps["on-failure"]["outputConfigMap"])["errors"]
    assert list(errors) == ["step1"] and "ValueError: step1 failed" in errors["step1"]


def test_step_timeout_is_enforced(op_namespace: str, run_workflow) -> None:
    run = run_workflow("step-timeout")
    status = kube.wait_for_phase(op_namespace, run, {"Succeeded", "Failed"})["status"]
    assert status["phase"] == "Failed"
    slow = status["steps"]["slow"]
    assert slow["phase"] == "TimedOut"
    assert "step timeout of 3s" in slow["message"]
    took = _time(slow["finishedAt"]) - _time(slow["startedAt"])
    assert took.total_seconds() < 30


def test_run_timeout_stops_the_run(op_namespace: str, run_workflow) -> None:
    run = run_workflow("run-timeout")
    status = kube.wait_for_phase(op_namespace, run, {"TimedOut", "Failed", "Succeeded"})["status"]
    assert status["phase"] == "TimedOut"
    assert status["steps"]["slow"]["phase"] == "TimedOut"
    assert status["steps"]["after"]["phase"] == "Skipped"
    assert (
        "timeout of 6s"
        in next(c for c in status["conditions"] if c["type"] == "Succeeded")["message"]
    )
    wait_for(
        lambda: (
            not any(
                p.status.phase == "Running"
                for p in client.CoreV1Api().list_namespaced_pod(op_namespace).items
            )
        ),
        30,
        "the timed-out step's pod to stop",
    )


def test_cancelling_stops_the_pod_within_ten_seconds(op_namespace: str, run_workflow) -> None:
    run = run_workflow("cancellable")
    core = client.CoreV1Api()
    wait_for(
        lambda: any(
            p.status.phase == "Running" for p in core.list_namespaced_pod(op_namespace).items
        ),
        90,
        "the step pod to run",
    )
    from kubehatch.client import Client

    Client(namespace=op_namespace).cancel(run)
    body = kube.wait_for_phase(op_namespace, run, {"Cancelled"}, timeout=10)
    assert body["status"]["steps"]["wait"]["phase"] == "Cancelled"
    wait_for(
        lambda: (
            not core.list_namespaced_pod(
                op_namespace, label_selector=f"kubehatch.dev/run={run}"
            ).items
        ),
        10,
        "the step pod to be gone",
    )


def test_worker_and_service_middleware_run_in_order_in_the_pod(
    op_namespace: str, run_workflow
) -> None:
    run = run_workflow("middleware")
    status = kube.wait_for_phase(op_namespace, run, {"Succeeded", "Failed"})["status"]
    assert status["phase"] == "Succeeded", status
    assert kube.output(op_namespace, status["steps"]["read"]["outputConfigMap"]) == {
        "order": ["worker", "service", "step"],
        "testkey": "testvalue",
    }


def test_killing_the_operator_mid_run_duplicates_no_job(
    op_namespace: str, run_workflow, operator
) -> None:
    run = run_workflow("sequential")
    wait_for(
        lambda: kube.jobs_of(op_namespace, run),
        60,
        "the first step's Job",
    )
    operator.kill()
    operator.start()
    status = kube.wait_for_phase(op_namespace, run, {"Succeeded", "Failed"})["status"]
    assert status["phase"] == "Succeeded", status
    assert kube.output(op_namespace, status["steps"]["two"]["outputConfigMap"]) == {"n": 2}
    jobs = kube.attempts_of(op_namespace, run)
    assert jobs == [("one", "1"), ("two", "1")]


def test_finished_runs_are_deleted_after_ttl_and_beyond_history(
    op_namespace: str, step_image: str
) -> None:
    custom = client.CustomObjectsApi()
    base = MANIFESTS["middleware"]
    ttl = {**base, "metadata": {**base["metadata"], "name": "with-ttl"}}
    ttl["spec"] = {**base["spec"], "ttlSecondsAfterFinished": 2}
    history = {**base, "metadata": {**base["metadata"], "name": "with-history"}}
    history["spec"] = {**base["spec"], "historyLimit": 1}
    kube.apply_workflow(op_namespace, ttl, step_image)
    kube.apply_workflow(op_namespace, history, step_image)
    kube.create_run(op_namespace, "ttl-run", "with-ttl")
    kube.create_run(op_namespace, "old", "with-history")
    kube.wait_for_phase(op_namespace, "old", {"Succeeded"})
    kube.create_run(op_namespace, "new", "with-history")
    kube.wait_for_phase(op_namespace, "new", {"Succeeded"})

    def names() -> set[str]:
        items = custom.list_namespaced_custom_object(
            kube.GROUP, kube.VERSION, op_namespace, "workflowruns"
        )["items"]
        return {i["metadata"]["name"] for i in items}

    wait_for(lambda: names() == {"new"}, 60, "ttl-run and old to be deleted")
    # The run's Jobs and ConfigMaps went with it (owner references).
    wait_for(
        lambda: not kube.jobs_of(op_namespace, "ttl-run"), 30, "ttl-run's Jobs to be collected"
    )


def _with_concurrency(name: str, strategy: str) -> dict[str, Any]:
    base = MANIFESTS["cancellable"]
    manifest = {**base, "metadata": {**base["metadata"], "name": name}}
    limit = {"expression": "input.user", "maxRuns": 1, "limitStrategy": strategy}
    manifest["spec"] = {**base["spec"], "concurrency": limit}
    return manifest


def _phase(namespace: str, run: str) -> str | None:
    return (kube.get_run(namespace, run).get("status") or {}).get("phase")


def test_queue_newest_holds_a_users_second_run_until_the_first_ends(
    op_namespace: str, step_image: str
) -> None:
    kube.apply_workflow(op_namespace, _with_concurrency("queued", "QueueNewest"), step_image)
    kube.create_run(op_namespace, "ada-1", "queued", {"user": "ada"})
    kube.wait_for_phase(op_namespace, "ada-1", {"Running"})
    kube.create_run(op_namespace, "ada-2", "queued", {"user": "ada"})
    kube.create_run(op_namespace, "bob-1", "queued", {"user": "bob"})
    kube.wait_for_phase(op_namespace, "ada-2", {"Queued"})
    kube.wait_for_phase(op_namespace, "bob-1", {"Running"})
    assert kube.get_run(op_namespace, "ada-2")["status"]["concurrencyKey"] == "ada"
    from kubehatch.client import Client

    Client(namespace=op_namespace).cancel("ada-1")
    kube.wait_for_phase(op_namespace, "ada-2", {"Running"}, timeout=30)


def test_cancel_in_progress_makes_room_for_the_newest_run(
    op_namespace: str, step_image: str
) -> None:
    kube.apply_workflow(op_namespace, _with_concurrency("newest", "CancelInProgress"), step_image)
    kube.create_run(op_namespace, "first", "newest", {"user": "ada"})
    kube.wait_for_phase(op_namespace, "first", {"Running"})
    kube.create_run(op_namespace, "second", "newest", {"user": "ada"})
    body = kube.wait_for_phase(op_namespace, "first", {"Cancelled"}, timeout=30)
    condition = next(c for c in body["status"]["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "ConcurrencyLimit"
    kube.wait_for_phase(op_namespace, "second", {"Running"}, timeout=30)
    assert _phase(op_namespace, "second") == "Running"


def test_a_key_function_pod_decides_the_concurrency_group(
    op_namespace: str, step_image: str
) -> None:
    kube.apply_workflow(op_namespace, MANIFESTS["keyed"], step_image)
    kube.create_run(op_namespace, "k1", "keyed", {"user": "ada"})
    first = kube.wait_for_phase(op_namespace, "k1", {"Running", "Failed"}, timeout=90)
    assert first["status"]["phase"] == "Running", first["status"]
    assert first["status"]["concurrencyKey"] == "ada"
    kube.create_run(op_namespace, "k2", "keyed", {"user": "ada"})
    queued = kube.wait_for_phase(op_namespace, "k2", {"Queued", "Failed"}, timeout=90)
    assert queued["status"]["phase"] == "Queued", queued["status"]
    from kubehatch.client import Client

    Client(namespace=op_namespace).cancel("k1")
    kube.wait_for_phase(op_namespace, "k2", {"Running"}, timeout=30)
    assert ("concurrency.key", "1") in kube.attempts_of(op_namespace, "k2")
