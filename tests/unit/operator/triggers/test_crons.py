"""Cron schedules: validation, the CronJob per schedule, what changes, next times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubehatch.api.wire import ENV_JOB_NAME as JOB_NAME_ENV
from kubehatch.api.wire import MAX_CRONJOB_NAME
from kubehatch_operator.triggers.crons import (
    TriggerPod,
    cron_problem,
    cron_problems,
    cronjob_manifest,
    cronjob_name,
    desired_cronjobs,
    last_cron_run,
    next_cron_times,
    plan_cronjobs,
    run_prefix,
)
from kubehatch_operator.triggers.model import WorkflowInfo

POD = TriggerPod(image="localhost/kubehatch/operator:1", service_account="kubehatch-trigger")
NOW = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)


def wf(*crons: str, suspend: bool = False, uid: str = "uid-1", generation: int = 1) -> WorkflowInfo:
    return WorkflowInfo(
        namespace="ns", name="nightly", uid=uid, generation=generation, crons=crons, suspend=suspend
    )


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "*/5 * * * *",
        "0 9 * * MON-FRI",
        "0 0 1 JAN *",
        "@hourly",
        "@daily",
        "0 0 * * WED",
    ],
)
def test_valid_schedules(expression: str) -> None:
    assert cron_problem(expression) is None


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("61 * * * *", "out of range"),
        ("* * *", "3 field(s)"),
        ("0 0 * * * *", "6 field(s)"),
        ("*/0 * * * *", "step '0'"),
        ("a b c d e", "not acceptable"),
        ("@every 5m", "unknown macro"),
        ("@fortnightly", "unknown macro"),
        ("0 0 L * *", "Kubernetes CronJobs do not support"),
        ("0 0 * * 1#2", "Kubernetes CronJobs do not support"),
        ("0 0 15W * *", "Kubernetes CronJobs do not support"),
        ("", "0 field(s)"),
    ],
)
def test_invalid_schedules_say_why(expression: str, why: str) -> None:
    problem = cron_problem(expression)
    assert problem is not None and why in problem


def test_problems_name_the_field_the_expression_and_the_fix() -> None:
    (problem,) = cron_problems(["0 * * * *", "61 * * * *"])
    assert problem.startswith("spec.triggers.crons[1]: '61 * * * *' is not a valid cron schedule")
    assert "out of range" in problem and "e.g. '*/5 * * * *'" in problem


def test_names_are_deterministic_short_and_distinct_per_schedule() -> None:
    assert cronjob_name("nightly", "0 0 * * *") == cronjob_name("nightly", "0 0 * * *")
    assert cronjob_name("nightly", "0 0 * * *") != cronjob_name("nightly", "0 1 * * *")
    assert cronjob_name("nightly", "0 0 * * *").startswith("nightly-cron-")
    assert len(cronjob_name("n" * 63, "* * * * *")) <= MAX_CRONJOB_NAME
    assert run_prefix("nightly", "0 0 * * *") == cronjob_name("nightly", "0 0 * * *")


def test_cronjob_manifest() -> None:
    body = cronjob_manifest(wf("*/5 * * * *", suspend=True), "*/5 * * * *", POD)
    meta, spec = body["metadata"], body["spec"]
    assert meta["namespace"] == "ns"
    assert meta["ownerReferences"][0]["kind"] == "Workflow"
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert meta["ownerReferences"][0]["controller"] is True
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "kubehatch"
    assert meta["annotations"]["kubehatch.dev/trigger"] == "cron:*/5 * * * *"
    assert (spec["schedule"], spec["timeZone"], spec["suspend"]) == ("*/5 * * * *", "Etc/UTC", True)
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubehatch-trigger"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == POD.image
    assert container["command"] == ["kubehatch", "trigger"]
    assert container["args"] == [
        "--workflow", "nightly", "--schedule", "*/5 * * * *",
        "--run-prefix", run_prefix("nightly", "*/5 * * * *"),
    ]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    assert env[JOB_NAME_ENV]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['batch.kubernetes.io/job-name']"
    )
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Trigger Jobs must not look like step Jobs to the run watch.
    job_labels = spec["jobTemplate"]["metadata"]["labels"]
    assert "app.kubernetes.io/managed-by" not in job_labels


def test_spec_hash_follows_what_matters() -> None:
    def digest(workflow: WorkflowInfo, pod: TriggerPod = POD) -> str:
        return cronjob_manifest(workflow, "* * * * *", pod)["metadata"]["annotations"][
            "kubehatch.dev/spec-hash"
        ]

    assert digest(wf("* * * * *")) == digest(wf("* * * * *", generation=7))
    assert digest(wf("* * * * *")) != digest(wf("* * * * *", suspend=True))
    assert digest(wf("* * * * *")) != digest(wf("* * * * *", uid="uid-2"))
    assert digest(wf("* * * * *")) != digest(wf("* * * * *"), TriggerPod(image="other:2"))


def test_desired_cronjobs() -> None:
    assert len(desired_cronjobs(wf("0 * * * *", "30 * * * *", "0 * * * *"), POD)) == 2
    # An invalid schedule creates nothing at all, nor does a missing image.
    assert desired_cronjobs(wf("0 * * * *", "61 * * * *"), POD) == []
    # Without an image the operator cannot say what the CronJobs should be: hands off.
    assert desired_cronjobs(wf("0 * * * *"), TriggerPod(image=None)) is None
    assert desired_cronjobs(wf(), POD) == []


def existing(body: dict, version: str = "7") -> dict:
    return {**body, "metadata": {**body["metadata"], "resourceVersion": version}}


def wanted(workflow: WorkflowInfo) -> list[dict]:
    desired = desired_cronjobs(workflow, POD)
    assert desired is not None
    return desired


def test_plan_creates_replaces_and_deletes() -> None:
    hourly, nightly = wf("0 * * * *", "0 0 * * *"), wf("0 0 * * *")
    old = [existing(b) for b in wanted(hourly)]
    # Nothing to do when everything matches.
    assert plan_cronjobs(wanted(hourly), old).empty
    # A removed schedule is deleted.
    plan = plan_cronjobs(wanted(nightly), old)
    assert plan.create == [] and plan.replace == []
    assert plan.delete == [cronjob_name("nightly", "0 * * * *")]
    # A changed schedule is a new name: one create, one delete.
    plan = plan_cronjobs(wanted(wf("5 * * * *", "0 0 * * *")), old)
    assert [b["spec"]["schedule"] for b in plan.create] == ["5 * * * *"]
    assert plan.delete == [cronjob_name("nightly", "0 * * * *")]
    # Suspending replaces, keeping the resourceVersion read.
    plan = plan_cronjobs(wanted(wf("0 * * * *", "0 0 * * *", suspend=True)), old)
    assert len(plan.replace) == 2 and not plan.create and not plan.delete
    assert all(b["spec"]["suspend"] for b in plan.replace)
    assert {b["metadata"]["resourceVersion"] for b in plan.replace} == {"7"}
    # Everything goes when the workflow has no valid schedule left.
    assert len(plan_cronjobs([], old).delete) == 2


def test_next_cron_times_skip_invalid_schedules() -> None:
    assert next_cron_times(["* * * * *", "0 0 * * *", "61 * * * *"], NOW) == [
        datetime(2026, 6, 1, 12, 1, tzinfo=UTC),
        datetime(2026, 6, 2, 0, 0, tzinfo=UTC),
    ]
    assert next_cron_times(["@hourly"], NOW) == [datetime(2026, 6, 1, 13, 0, tzinfo=UTC)]


def test_last_cron_run_comes_from_the_cronjob_status() -> None:
    body = cronjob_manifest(wf("* * * * *"), "* * * * *", POD)
    prefix = run_prefix("nightly", "* * * * *")
    body["status"] = {
        "lastScheduleTime": "2026-06-01T12:00:00Z",
        "lastSuccessfulTime": "2026-06-01T12:00:07Z",
    }
    assert last_cron_run(body) == ("cron:* * * * *", f"{prefix}-20260601-1200")
    # The latest time's pod has not finished yet: nothing new to show.
    body["status"]["lastScheduleTime"] = "2026-06-01T12:01:00Z"
    assert last_cron_run(body) is None
    body["status"] = {}
    assert last_cron_run(body) is None
