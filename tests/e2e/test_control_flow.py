"""Control flow on a real cluster: hook steps, conditions and parent rules, retrying a
failed run from its failed step after the Workflow was fixed."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client

from kubehatch import workflow_manifests
from tests.e2e import kube
from tests.e2e.images import fixed_image
from tests.e2e.support import kubehatch, wait_for
from tests.e2e.workers import control

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

MANIFESTS = {
    m["metadata"]["name"]: m
    for m in workflow_manifests(control.worker, worker_ref=control.WORKER_REF)
}
FINAL = {"Succeeded", "Failed", "Cancelled", "TimedOut"}


@pytest.fixture
def run_workflow(op_namespace: str, step_image: str):
    applied: set[str] = set()

    def start(workflow: str, run: str, input: dict[str, Any] | None = None) -> dict[str, Any]:
        if workflow not in applied:
            kube.apply_workflow(op_namespace, MANIFESTS[workflow], step_image)
            applied.add(workflow)
        kube.create_run(op_namespace, run, workflow, input)
        return kube.wait_for_phase(op_namespace, run, FINAL, timeout=180)["status"]

    return start


def _second(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(microsecond=0)


def phases(status: dict[str, Any]) -> dict[str, str]:
    return {name: step["phase"] for name, step in status["steps"].items()}


def test_hooks_run_after_the_steps_and_on_exit_runs_last(op_namespace: str, run_workflow) -> None:
    ok = run_workflow("hooks", "ok", {})
    assert ok["phase"] == "Succeeded", ok["conditions"]
    assert phases(ok) == {
        "work": "Succeeded",
        "on-success": "Succeeded",
        "on-failure": "Skipped",
        "on-exit": "Succeeded",
    }
    steps = ok["steps"]
    assert _second(steps["on-exit"]["startedAt"]) >= _second(steps["on-success"]["finishedAt"])
    assert kube.output(op_namespace, steps["on-exit"]["outputConfigMap"]) == {"errors": {}}

    failed = run_workflow("hooks", "failed", {"fail": True})
    assert failed["phase"] == "Failed", failed
    assert phases(failed) == {
        "work": "Failed",
        "on-success": "Skipped",
        "on-failure": "Succeeded",
        "on-exit": "Succeeded",
    }
    errors = kube.output(op_namespace, failed["steps"]["on-exit"]["outputConfigMap"])["errors"]
    assert list(errors) == ["work"] and "ValueError: work failed" in errors["work"]


def test_a_condition_skips_a_branch_and_the_join_runs(op_namespace: str, run_workflow) -> None:
    small = run_workflow("conditions", "small", {"amount": 50})
    assert small["phase"] == "Succeeded", small
    assert phases(small) == {
        "check": "Succeeded",
        "big": "Skipped",
        "small": "Succeeded",
        "after-big": "Skipped",
        "join": "Succeeded",
    }
    assert small["steps"]["big"]["message"] == (
        "skipped: skipIf 'parents.check.amount <= 100' was true"
    )
    assert small["steps"]["after-big"]["message"] == "not run: parent big skipped"
    joined = kube.output(op_namespace, small["steps"]["join"]["outputConfigMap"])
    assert joined == {"after": ["small"]}
    # No pod ever ran for the skipped steps.
    jobs = {j.metadata.labels["kubehatch.dev/step"] for j in kube.jobs_of(op_namespace, "small")}
    assert jobs == {"check", "small", "join"}

    big = run_workflow("conditions", "big", {"amount": 500})
    assert phases(big)["small"] == "Skipped" and phases(big)["after-big"] == "Succeeded"


def test_a_failed_run_retried_after_the_fix_reruns_only_the_failed_steps(
    op_namespace: str, run_workflow
) -> None:
    failed = run_workflow("retry-me", "fix-me")
    assert failed["phase"] == "Failed", failed
    assert phases(failed) == {"first": "Succeeded", "flaky": "Failed", "last": "Skipped"}
    first_output = failed["steps"]["first"]["outputConfigMap"]
    # The fix: a new image of the step's code, applied to the Workflow.
    api = client.CustomObjectsApi()
    workflow = api.get_namespaced_custom_object(
        kube.GROUP, kube.VERSION, op_namespace, "workflows", "retry-me"
    )
    for step in workflow["spec"]["steps"]:
        if step["name"] == "flaky":
            step["image"] = fixed = fixed_image("flaky")
    api.replace_namespaced_custom_object(
        kube.GROUP, kube.VERSION, op_namespace, "workflows", "retry-me", workflow
    )
    done = kubehatch(
        "retry", "fix-me", "--from", "flaky", "--wait", "-n", op_namespace, timeout=240
    )
    assert done.returncode == 0, done.stderr
    assert "workflowrun/fix-me Succeeded" in done.stdout
    status = kube.get_run(op_namespace, "fix-me")["status"]
    assert status["retries"] == 1
    steps = status["steps"]
    assert phases(status) == dict.fromkeys(["first", "flaky", "last"], "Succeeded")
    assert steps["first"]["attempts"] == 1 and steps["first"]["outputConfigMap"] == first_output
    assert steps["flaky"]["attempts"] == 2  # attempt numbers keep growing
    assert kube.output(op_namespace, steps["flaky"]["outputConfigMap"]) == {
        "value": 2,
        "attempt": 2,
    }
    assert kube.output(op_namespace, steps["last"]["outputConfigMap"]) == {"value": 3}
    firsts = [
        j
        for j in kube.jobs_of(op_namespace, "fix-me")
        if j.metadata.labels["kubehatch.dev/step"] == "first"
    ]
    assert len(firsts) == 1  # the succeeded step did not run again
    images = {
        j.metadata.labels["kubehatch.dev/attempt"]: j.spec.template.spec.containers[0].image
        for j in kube.jobs_of(op_namespace, "fix-me")
        if j.metadata.labels["kubehatch.dev/step"] == "flaky"
    }
    assert images["2"] == fixed and images["1"] != fixed
    labels = kube.get_run(op_namespace, "fix-me")["metadata"].get("labels", {})
    assert "kubehatch.dev/retry" not in labels

    again = kubehatch("retry", "fix-me", "-n", op_namespace)
    assert again.returncode == 1 and "no step failed" in again.stderr
    replay = kubehatch("replay", "fix-me", "-n", op_namespace)
    assert replay.returncode == 0, replay.stderr
    new = replay.stdout.split()[0].removeprefix("workflowrun/")
    status = kube.wait_for_phase(op_namespace, new, FINAL, timeout=180)["status"]
    assert status["phase"] == "Succeeded"


def test_a_fan_out_of_fifty_items_runs_five_at_a_time_and_keeps_their_order(
    op_namespace: str, run_workflow
) -> None:
    status = run_workflow("fan-out", "fan", {"count": 50})
    assert status["phase"] == "Succeeded", status["conditions"]
    square = status["steps"]["square"]
    assert square["items"] == {"total": 50, "succeeded": 50, "failed": 0, "running": 0}
    outputs = kube.output(op_namespace, square["outputConfigMap"])
    assert [o["index"] for o in outputs] == list(range(50))
    assert [o["square"] for o in outputs] == [i * i for i in range(50)]
    # Never more than five items at once: at every item's start, count those running.
    overlap = max(
        sum(other["start"] <= one["start"] < other["end"] for other in outputs) for one in outputs
    )
    assert overlap <= 5, overlap
    total = kube.output(op_namespace, status["steps"]["total"]["outputConfigMap"])
    assert total == {"sum": sum(i * i for i in range(50))}
    jobs = kube.jobs_of(op_namespace, "fan")
    assert len([j for j in jobs if j.metadata.labels.get("kubehatch.dev/item")]) == 50
    # The run's status counts the items; it does not list them.
    assert len(str(status)) < 6000


def test_a_failing_and_a_self_cancelling_step_beside_two_good_branches(
    op_namespace: str, run_workflow
) -> None:
    """Hatchet's run-details case: Failed outranks Cancelled; the other outputs stay."""
    status = run_workflow("run-details", "details")
    assert status["phase"] == "Failed"
    assert phases(status) == {
        "step1": "Failed",
        "cancel-me": "Cancelled",
        "left": "Succeeded",
        "right": "Succeeded",
        "after-cancel": "Skipped",
    }
    steps = status["steps"]
    assert steps["cancel-me"]["attempts"] == 1  # a step that cancels itself is not retried
    assert steps["cancel-me"]["message"] == "cancelled by the step itself (ctx.cancel())"
    assert "step1 failed" in steps["step1"]["message"]
    for branch in ("left", "right"):
        assert kube.output(op_namespace, steps[branch]["outputConfigMap"]) == {"branch": branch}


def test_steps_wait_for_an_event_and_sleep_without_a_pod(
    op_namespace: str, run_workflow, step_image: str
) -> None:
    kube.apply_workflow(op_namespace, MANIFESTS["waits"], step_image)
    # Run "early": its event comes before its wait begins (the lookback finds it).
    kube.create_run(op_namespace, "early", "waits", {"id": 1})
    for order, by in ((99, "someone else"), (1, "ada")):
        pushed = kubehatch(
            "event", "push", "order:paid", "-d", json.dumps({"id": order, "by": by}),
            "-n", op_namespace,
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
    early = kube.wait_for_phase(op_namespace, "early", FINAL, timeout=180)["status"]
    assert early["phase"] == "Succeeded", early["conditions"]
    shipped = kube.output(op_namespace, early["steps"]["ship"]["outputConfigMap"])
    assert shipped["paid_by"] == "ada"
    # Run "late": it waits, Running, with no pod, until its event comes.
    kube.create_run(op_namespace, "late", "waits", {"id": 2})
    wait_for(
        lambda: kube.get_run(op_namespace, "late").get("status", {}).get("steps", {})
        .get("paid", {}).get("phase") == "Running",
        120, "the wait to begin",
    )  # fmt: skip
    steps = {j.metadata.labels["kubehatch.dev/step"] for j in kube.jobs_of(op_namespace, "late")}
    assert steps == {"place"}  # no Job for the wait
    pushed = kubehatch(
        "event", "push", "order:paid", "-d", '{"id": 2, "by": "grace"}', "-n", op_namespace
    )
    assert pushed.returncode == 0, pushed.stderr
    late = kube.wait_for_phase(op_namespace, "late", FINAL, timeout=180)["status"]
    assert late["phase"] == "Succeeded", late["conditions"]
    steps = late["steps"]
    assert kube.output(op_namespace, steps["ship"]["outputConfigMap"])["paid_by"] == "grace"
    nap = _second(steps["nap"]["finishedAt"]) - _second(steps["nap"]["startedAt"])
    assert nap.total_seconds() >= 3
    jobs = {j.metadata.labels["kubehatch.dev/step"] for j in kube.jobs_of(op_namespace, "late")}
    assert jobs == {"place", "ship"}  # the wait and the sleep ran no pod


def _step_phase(namespace: str, run: str, step: str) -> str | None:
    status = kube.get_run(namespace, run).get("status") or {}
    return (status.get("steps") or {}).get(step, {}).get("phase")


def test_a_sleep_uses_no_pod_and_ends_on_time_across_an_operator_restart(
    op_namespace: str, step_image: str, operator: Any
) -> None:
    kube.apply_workflow(op_namespace, MANIFESTS["long-nap"], step_image)
    kube.create_run(op_namespace, "nap", "long-nap")
    wait_for(
        lambda: _step_phase(op_namespace, "nap", "nap") == "Running", 120, "the sleep to begin"
    )
    operator.kill()  # no operator for a while, in the middle of the sleep
    time.sleep(5)
    operator.start()
    status = kube.wait_for_phase(op_namespace, "nap", FINAL, timeout=120)["status"]
    assert status["phase"] == "Succeeded", status["conditions"]
    nap = status["steps"]["nap"]
    slept = (_second(nap["finishedAt"]) - _second(nap["startedAt"])).total_seconds()
    assert 19 <= slept <= 26, slept  # on time, though the operator restarted meanwhile
    steps = {j.metadata.labels["kubehatch.dev/step"] for j in kube.jobs_of(op_namespace, "nap")}
    assert steps == {"before", "after"}  # the sleep ran no pod


def test_a_wait_with_no_event_takes_its_timeout_branch(op_namespace: str, run_workflow) -> None:
    status = run_workflow("wait-or-go", "go")
    assert status["phase"] == "Succeeded", status["conditions"]
    output = kube.output(op_namespace, status["steps"]["after-wait"]["outputConfigMap"])
    assert output["waited"] == {"timedOut": True}


def test_a_suspended_run_starts_no_step_until_it_is_resumed(
    op_namespace: str, step_image: str
) -> None:
    kube.apply_workflow(op_namespace, MANIFESTS["pausable"], step_image)
    kube.create_run(op_namespace, "paused", "pausable")
    wait_for(lambda: _step_phase(op_namespace, "paused", "slow") == "Running", 120, "slow to start")
    done = kubehatch("suspend", "paused", "-n", op_namespace)
    assert done.returncode == 0 and "workflowrun/paused suspended" in done.stdout, done.stderr
    wait_for(lambda: _step_phase(op_namespace, "paused", "slow") == "Succeeded", 120, "slow to end")
    time.sleep(4)  # a suspended run starts nothing, however long it waits
    status = kube.get_run(op_namespace, "paused")["status"]
    assert status["steps"]["second"]["phase"] == "Pending"
    assert "suspended" in status["steps"]["second"]["message"]
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "Suspended"
    steps = {j.metadata.labels["kubehatch.dev/step"] for j in kube.jobs_of(op_namespace, "paused")}
    assert steps == {"slow"}
    done = kubehatch("resume", "paused", "-n", op_namespace)
    assert done.returncode == 0, done.stderr
    status = kube.wait_for_phase(op_namespace, "paused", FINAL, timeout=120)["status"]
    assert status["phase"] == "Succeeded", status["conditions"]
