"""Steps on WorkerPools, without a cluster: the task of an attempt, what a task's status
tells the decisions, a lost worker, and the pool's Deployment and status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kubehatch.api import outputs, wire
from kubehatch.api.workerpool import WorkerPoolSpec
from kubehatch.api.workertask import WorkerTask
from kubehatch.api.workflowrun import StepPhase
from kubehatch_operator import pools, tasks
from kubehatch_operator.decisions import decide
from kubehatch_operator.jobs import attempt_env
from kubehatch_operator.model import AttemptState, StartAttempt
from kubehatch_operator.settings import StepSettings
from tests.unit.operator.test_decisions import T0, after, job, name, started, step, workflow

POOLED = workflow(step("a"), step("b", "a"), step("c", "b", pool=""), pool="fast")


def start_of(step_name: str, parents: dict[str, str] | None = None) -> StartAttempt:
    spec = POOLED.all_steps[[s.name for s in POOLED.all_steps].index(step_name)]
    return StartAttempt(spec, 1, name(step_name, 1), parents or {})


def task_body(step_name: str = "b", **status: object) -> dict:
    start = start_of(step_name, {"a": wire.output_configmap_name(name("a", 1))})
    env = attempt_env(
        namespace="ns", workflow="wf", run="r1", run_uid="uid-1", spec=POOLED, start=start
    )
    body = tasks.worker_task(
        env=env,
        start=start,
        pool="fast",
        input_json='{"n": 1}',
        parents={"a": '{"x": 2}'},
        lease_seconds=9,
    )
    body["metadata"]["resourceVersion"] = "7"
    body["metadata"]["creationTimestamp"] = "2026-01-01T12:00:00Z"
    if status:
        body["status"] = status
    return body


# --- the task ------------------------------------------------------------------------------


def test_a_task_carries_what_a_step_pod_gets_and_parses_as_its_kind() -> None:
    body = task_body()
    WorkerTask.model_validate(body)  # the CRD's own model accepts it
    spec = body["spec"]
    assert spec["pool"] == "fast" and spec["leaseSeconds"] == 9
    assert spec["input"] == '{"n": 1}' and spec["parents"] == {"a": '{"x": 2}'}
    assert spec["env"]["KUBEHATCH_STEP"] == "b" and spec["env"]["KUBEHATCH_PARENTS"] == "a"
    assert spec["env"]["KUBEHATCH_ACTION"] == "svc:b"
    meta = body["metadata"]
    assert meta["name"] == name("b", 1)
    assert meta["labels"][wire.LABEL_POOL] == "fast"
    assert meta["labels"][wire.LABEL_STEP] == "b" and meta["labels"][wire.LABEL_ATTEMPT] == "1"
    assert meta["ownerReferences"][0]["kind"] == "WorkflowRun"


def test_the_step_pool_comes_from_the_step_over_the_workflow() -> None:
    a, b, c = POOLED.all_steps
    assert POOLED.step_pool(a) == "fast" and POOLED.step_pool(b) == "fast"
    assert POOLED.step_pool(c) is None  # '' on the step: a Job of its own
    assert workflow(step("a")).step_pool(a) is None


def test_an_unclaimed_task_is_active_and_not_started() -> None:
    attempt = tasks.attempt_of(task_body())
    assert attempt is not None
    assert attempt.state is AttemptState.ACTIVE and not attempt.started
    assert attempt.pool == "fast" and attempt.lease_expires_at is None and attempt.uid == ""


def test_a_claimed_task_is_started_with_its_lease() -> None:
    attempt = tasks.attempt_of(
        task_body(phase="Running", worker="fast-1-x", renewedAt="2026-01-01T12:00:03.5Z")
    )
    assert attempt is not None and attempt.started and attempt.worker == "fast-1-x"
    assert attempt.lease_expires_at == datetime(2026, 1, 1, 12, 0, 12, 500000, tzinfo=UTC)


def test_a_succeeded_task_gives_the_output_a_step_pod_would_have_stored() -> None:
    attempt = tasks.attempt_of(
        task_body(
            phase="Succeeded", worker="w", output='{"y": 3}', finishedAt="2026-01-01T12:00:01Z"
        )
    )
    assert attempt is not None and attempt.state is AttemptState.SUCCEEDED
    assert attempt.output == '{"y": 3}'
    (configmap,) = attempt.output_configmaps
    assert configmap["metadata"]["name"] == wire.output_configmap_name(name("b", 1))
    assert configmap["data"] == {wire.OUTPUT_KEY: '{"y": 3}'}
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert not outputs.parts_of(configmap["metadata"])


@pytest.mark.parametrize(
    ("reason", "flags"),
    [
        ("Error", {}),
        ("PermanentError", {"permanent": True}),
        ("SelfCancelled", {"cancelled": True}),
        ("TimedOut", {"timed_out": True}),
        ("WorkerLost", {"lost": True}),
        ("Cancelled", {"lost": True}),  # its worker shut down: not the step's doing
    ],
)
def test_a_failed_task_says_how(reason: str, flags: dict[str, bool]) -> None:
    attempt = tasks.attempt_of(task_body(phase="Failed", worker="w", reason=reason, message="boom"))
    assert attempt is not None and attempt.state is AttemptState.FAILED
    assert attempt.message == "boom"
    for flag in ("permanent", "cancelled", "timed_out", "lost"):
        assert getattr(attempt, flag) is flags.get(flag, False), flag


def test_jobs_are_still_read_as_jobs() -> None:
    job_body = {
        "metadata": {
            "name": "j",
            "labels": {wire.LABEL_STEP: "a", wire.LABEL_ATTEMPT: "1"},
            "creationTimestamp": "2026-01-01T12:00:00Z",
        },
        "status": {"succeeded": 1},
    }
    attempt = tasks.attempt_of(job_body)
    assert attempt is not None and attempt.pool is None
    assert attempt.state is AttemptState.SUCCEEDED


# --- decisions -------------------------------------------------------------------------------


def claimed(step_name: str, attempt: int, until: datetime) -> object:
    return job(
        step_name, attempt, AttemptState.ACTIVE, started=True, pool="fast", worker="w1",
        lease_expires_at=until,
    )  # fmt: skip


def test_a_claimed_step_runs_and_is_looked_at_again_when_its_lease_lapses() -> None:
    run, _ = started(POOLED)
    lease = T0 + timedelta(seconds=15)
    decision = decide(run, POOLED, [claimed("a", 1, lease)], T0 + timedelta(seconds=1))
    assert decision.status.steps["a"].phase is StepPhase.RUNNING
    assert decision.wake_at == lease and not decision.lost_tasks and not decision.start


def test_a_lapsed_lease_marks_the_task_lost_and_runs_the_step_again_at_once() -> None:
    run, _ = started(POOLED)
    lapsed = T0 + timedelta(seconds=15)
    decision = decide(run, POOLED, [claimed("a", 1, lapsed)], lapsed + timedelta(seconds=1))
    assert decision.lost_tasks == [name("a", 1)]
    (again,) = decision.start
    assert (again.step_name, again.attempt) == ("a", 2)  # no retries: not held against them
    assert decision.status.steps["a"].phase is StepPhase.RUNNING
    assert "WorkerLost" in [e.reason for e in decision.events]


def test_a_step_that_keeps_losing_its_worker_fails_after_max_lost() -> None:
    run, _ = started(POOLED)
    attempts = [
        job("a", n, AttemptState.FAILED, pool="fast", lost=True, message="lost", finished_at=T0)
        for n in range(1, tasks.MAX_LOST + 2)
    ]
    decision = decide(run, POOLED, attempts, T0 + timedelta(seconds=1))
    assert not decision.start
    assert decision.status.steps["a"].phase is StepPhase.FAILED


def test_a_lost_attempt_does_not_use_up_the_retries() -> None:
    wf = workflow(step("a", retries=1), pool="fast")
    run, _ = started(wf)
    attempts = [
        job("a", 1, AttemptState.FAILED, pool="fast", lost=True, message="lost", finished_at=T0),
        job("a", 2, AttemptState.FAILED, pool="fast", message="boom", finished_at=T0),
    ]
    decision = decide(run, wf, attempts, T0 + timedelta(minutes=10))
    (again,) = decision.start  # attempt 2 was the first real failure: one retry left
    assert again.attempt == 3


def test_children_on_a_pool_start_from_a_succeeded_task() -> None:
    run, _ = started(POOLED)
    done = job("a", 1, AttemptState.SUCCEEDED, pool="fast", output="{}", finished_at=T0)
    decision = decide(run, POOLED, [done], T0)
    (child,) = decision.start
    assert child.step_name == "b" and child.parents == {
        "a": wire.output_configmap_name(name("a", 1))
    }
    run = after(run, decision)
    assert run.status.steps["a"].output_config_map == wire.output_configmap_name(name("a", 1))


def test_waiting_reasons_name_the_pool_and_the_fix() -> None:
    assert "does not exist" in tasks.waiting_reason("fast", None)
    assert "create it" in tasks.waiting_reason("fast", None)
    assert "no ready worker" in tasks.waiting_reason("fast", tasks.PoolView(2, 0, 15))
    assert "busy" in tasks.waiting_reason("fast", tasks.PoolView(2, 2, 15))


# --- the pool --------------------------------------------------------------------------------


def test_the_pool_runs_restricted_workers_of_its_image_as_the_worker_account() -> None:
    spec = WorkerPoolSpec(image="app:1", worker="app.main:worker", replicas=2, slots=8)
    body = pools.worker_deployment("ns", "fast", "uid-p", spec, StepSettings())
    assert body["spec"]["replicas"] == 2
    assert body["spec"]["selector"] == {"matchLabels": {wire.LABEL_POOL: "fast"}}
    pod = body["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubehatch-worker"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["kubehatch", "worker"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[wire.ENV_POOL] == "fast" and env[wire.ENV_SLOTS] == "8"
    assert env[wire.ENV_WORKER] == "app.main:worker"
    assert body["metadata"]["ownerReferences"][0]["kind"] == "WorkerPool"


def test_the_deployment_hash_changes_with_the_spec_only() -> None:
    def digest(**spec: object) -> str:
        body = pools.worker_deployment(
            "ns", "fast", "u", WorkerPoolSpec(image="app:1", **spec), StepSettings()
        )
        return body["metadata"]["annotations"][wire.ANNOTATION_SPEC_HASH]

    assert digest() == digest()
    assert digest(replicas=3) != digest()


def test_queued_and_running_are_counted_by_pool() -> None:
    attempts = [
        job("a", 1, AttemptState.ACTIVE, pool="fast"),
        job("b", 1, AttemptState.ACTIVE, pool="fast", started=True),
        job("c", 1, AttemptState.ACTIVE, pool="slow"),
        job("d", 1, AttemptState.SUCCEEDED, pool="fast"),
        job("e", 1, AttemptState.ACTIVE),  # a Job
    ]
    queued, running = pools.task_counts(attempts)
    assert dict(queued) == {"fast": 1, "slow": 1} and dict(running) == {"fast": 1}


def test_the_pool_status_is_ready_once_a_worker_is() -> None:
    deployment = {"status": {"replicas": 2, "readyReplicas": 0}}
    status = pools.pool_status({}, 3, "fast", deployment, 4, 0, T0)
    (condition,) = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "NoReadyWorker")
    assert status["queued"] == 4 and status["selector"] == f"{wire.LABEL_POOL}=fast"
    ready = pools.pool_status(
        status, 3, "fast", {"status": {"replicas": 2, "readyReplicas": 1}}, 0, 1, T0
    )
    (condition,) = ready["conditions"]
    assert (condition["status"], condition["observedGeneration"]) == ("True", 3)
    assert ready["readyReplicas"] == 1 and json.dumps(ready)  # plain JSON, for the patch


def test_a_lease_counts_from_when_the_operator_saw_the_renewal_if_that_is_later() -> None:
    behind = tasks.attempt_of(
        task_body(phase="Running", worker="w", renewedAt="2026-01-01T11:59:00Z")
    )  # the worker's clock is a minute behind the operator's
    assert behind is not None
    seen = tasks.seen_lease(behind, None, T0)
    assert seen.lease_expires_at == T0 + timedelta(seconds=9)
    # The same version seen again (a relisting) keeps the lease it had.
    again = tasks.seen_lease(behind, seen, T0 + timedelta(seconds=30))
    assert again.lease_expires_at == seen.lease_expires_at


def test_marking_a_task_lost_is_conditional_on_the_version_decided_on() -> None:
    patch = tasks.lost_patch("gone", T0, 41)
    assert patch["metadata"] == {"resourceVersion": "41"}
    assert patch["status"]["reason"] == "WorkerLost" and patch["status"]["phase"] == "Failed"


def test_the_concurrency_key_step_never_runs_on_a_pool() -> None:
    from kubehatch_operator.launching import pool_of

    key = StartAttempt(POOLED.all_steps[0], 1, "k", {}, name=wire.KEY_STEP)
    assert pool_of(POOLED, key) is None
    assert pool_of(POOLED, start_of("a")) == "fast"
