"""Triggers on a real cluster: events, cron schedules and one-off times create runs.

The workflows are copies of the e2e worker's two-step workflow with triggers added, so
that one step image serves every test. The cron workflow is applied once for the whole
module (in its own namespace), so that its runs accumulate while the other tests run;
its test comes last and only checks what happened meanwhile.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubehatch import workflow_manifests
from kubehatch.client import Client
from tests.e2e import kube
from tests.e2e.support import wait_for
from tests.e2e.workers.dags import worker

pytestmark = [pytest.mark.e2e]

GROUP, VERSION = kube.GROUP, kube.VERSION
TWO_STEP = next(
    m for m in workflow_manifests(worker) if m["metadata"]["name"] == "two-step-workflow"
)
EVENT_RETENTION = 20  # seconds (KUBEHATCH_EVENT_RETENTION for the test operator)
KUBECTL = Path.home() / ".cache/kubehatch/bin/kubernetes-v1.34.4/kubectl"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def workflow(name: str, **triggers: Any) -> dict[str, Any]:
    """The two-step workflow under another name, with these spec.triggers (and suspend)."""
    manifest = copy.deepcopy(TWO_STEP)
    manifest["metadata"] = {"name": name}
    suspend = triggers.pop("suspend", False)
    manifest["spec"]["triggers"] = triggers
    manifest["spec"]["suspend"] = suspend
    return manifest


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi()


def runs(namespace: str, selector: str = "") -> list[dict[str, Any]]:
    return custom().list_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflowruns", label_selector=selector
    )["items"]


def get(namespace: str, plural: str, name: str) -> dict[str, Any]:
    return custom().get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def create_trigger_service_account(namespace: str) -> None:
    """What the chart installs for cron pods: a ServiceAccount that may only create runs."""
    core, rbac = client.CoreV1Api(), client.RbacAuthorizationV1Api()
    name = "kubehatch-trigger"
    meta = client.V1ObjectMeta(name=name)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=meta))
    rule = client.V1PolicyRule(api_groups=[GROUP], resources=["workflowruns"], verbs=["create"])
    rbac.create_namespaced_role(namespace, client.V1Role(metadata=meta, rules=[rule]))
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=meta,
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=name
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        ),
    )


@pytest.fixture(scope="module")
def trigger_operator(operator: Any, step_image: str) -> Iterator[Any]:
    """The test operator, restarted with the trigger image and a short event retention."""
    from tests.e2e.images import _images_env

    saved = {k: os.environ.get(k) for k in ("KUBEHATCH_TRIGGER_IMAGE", "KUBEHATCH_EVENT_RETENTION")}
    os.environ["KUBEHATCH_TRIGGER_IMAGE"] = _images_env()["KUBEHATCH_OPERATOR_IMAGE"]
    os.environ["KUBEHATCH_EVENT_RETENTION"] = f"{EVENT_RETENTION}s"
    operator.stop()
    operator.start()
    yield operator
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def cron_namespace(trigger_operator: Any, step_image: str) -> Iterator[tuple[str, datetime]]:
    """A namespace with a `* * * * *` workflow, applied when the module starts."""
    name = f"e2e-op-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    kube.create_step_service_account(name)
    create_trigger_service_account(name)
    applied = datetime.now(UTC)
    kube.apply_workflow(name, workflow("every-minute", crons=["* * * * *"]), step_image)
    try:
        yield name, applied
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def namespace(op_namespace: str, trigger_operator: Any, cron_namespace: Any) -> str:
    create_trigger_service_account(op_namespace)
    return op_namespace


def handled(namespace: str, event: str, timeout: float = 30) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = get(namespace, "workflowevents", event)
        return body if (body.get("status") or {}).get("handledAt") else None

    return wait_for(probe, timeout, f"event {event} to be handled")


def test_events_start_every_listening_workflow(namespace: str, step_image: str) -> None:
    for manifest in (
        workflow("two-step-workflow", events=["user:created"]),
        workflow("welcome", events=["user:created"]),
        workflow("either", events=["a", "b"]),
        workflow("any-user", events=["user:*"]),
        workflow("paused", events=["user:created"], suspend=True),
    ):
        kube.apply_workflow(namespace, manifest, step_image)
    api = Client(namespace=namespace)
    pushed = {
        key: api.event.push(key, payload)
        for key, payload in [
            ("user:created", {"username": "ada"}),
            ("a", {"username": "a"}),
            ("b", {"username": "b"}),
            ("order:paid", {}),
        ]
    }
    # The same from the command line.
    cli = subprocess.run(
        [sys.executable, "-m", "kubehatch.cli", "event", "push", "user:deleted",
         "--data", '{"username": "gone"}', "-n", namespace],
        capture_output=True, text=True,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    pushed["user:deleted"] = cli.stdout.split()[0].removeprefix("workflowevent/")
    started = {key: handled(namespace, event)["status"]["runs"] for key, event in pushed.items()}

    def workflows_of(names: list[str]) -> list[str]:
        return sorted(
            get(namespace, "workflowruns", n)["spec"]["workflowRef"]["name"] for n in names
        )

    # Two workflows on the same key both run, and so does the matching wildcard.
    assert workflows_of(started["user:created"]) == ["any-user", "two-step-workflow", "welcome"]
    assert workflows_of(started["a"]) == ["either"]
    assert workflows_of(started["b"]) == ["either"]
    assert workflows_of(started["user:deleted"]) == ["any-user"]
    assert started["order:paid"] == []  # user:* does not match, nothing else listens
    event = get(namespace, "workflowevents", pushed["order:paid"])
    condition = event["status"]["conditions"][0]
    assert (condition["type"], condition["reason"]) == ("Handled", "NoMatchingWorkflow")
    paused = get(namespace, "workflowevents", pushed["user:created"])["status"]["conditions"][0]
    assert "suspended, not started: paused" in paused["message"]

    # The guide's simple workflow ran with the payload as its input.
    simple = next(n for n in started["user:created"] if n.startswith("two-step-workflow-"))
    body = kube.wait_for_phase(namespace, simple, {"Succeeded", "Failed"})
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert body["spec"]["input"] == {"username": "ada"}
    assert body["spec"]["triggeredBy"] == {
        "type": "Event",
        "source": f"{pushed['user:created']} (user:created)",
    }
    assert kube.output(namespace, body["status"]["steps"]["step-two"]["outputConfigMap"]) == {
        "message": "Above message is: Username is: ada"
    }
    # The workflow's status shows the last run its wildcard made (either event may be last:
    # events are handled concurrently).
    wildcard_runs = {
        n for n in started["user:created"] + started["user:deleted"] if "any-user" in n
    }
    wait_for(
        lambda: (
            (get(namespace, "workflows", "any-user").get("status") or {})
            .get("lastTriggered", {})
            .get("event:user:*")
            in wildcard_runs
        ),
        10,
        "lastTriggered to show the wildcard's last run",
    )
    ready = get(namespace, "workflows", "any-user")["status"]["conditions"][0]
    assert (ready["type"], ready["status"]) == ("Ready", "True")


def test_the_same_event_twice_creates_no_duplicate_run_and_is_deleted_later(
    namespace: str, step_image: str
) -> None:
    kube.apply_workflow(
        namespace, workflow("two-step-workflow", events=["user:created"]), step_image
    )
    event = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowEvent",
        "metadata": {"name": "signup-1"},
        "spec": {"key": "user:created", "payload": {"username": "bo"}},
    }
    custom().create_namespaced_custom_object(GROUP, VERSION, namespace, "workflowevents", event)
    first = handled(namespace, "signup-1")
    with pytest.raises(ApiException) as pushed_again:
        custom().create_namespaced_custom_object(GROUP, VERSION, namespace, "workflowevents", event)
    assert pushed_again.value.status == 409
    # Replay the handling: forget that the event was handled.
    custom().patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "workflowevents", "signup-1",
        {"status": {"handledAt": None, "runs": None}},
    )  # fmt: skip
    again = handled(namespace, "signup-1")
    assert again["status"]["runs"] == first["status"]["runs"]
    assert len(runs(namespace, "kubehatch.dev/event=signup-1")) == 1
    # Retention: the handled event is deleted after KUBEHATCH_EVENT_RETENTION; its run stays.
    handled_at = _time(first["status"]["handledAt"])

    def gone() -> bool:
        try:
            get(namespace, "workflowevents", "signup-1")
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(gone, EVENT_RETENTION + 20, "the handled event to be deleted")
    deleted_after = (datetime.now(UTC) - handled_at).total_seconds()
    assert EVENT_RETENTION - 2 <= deleted_after <= EVENT_RETENTION + 20
    assert len(runs(namespace, "kubehatch.dev/event=signup-1")) == 1


def test_invalid_cron_marks_the_workflow_not_ready(namespace: str, step_image: str) -> None:
    kube.apply_workflow(namespace, workflow("bad-cron", crons=["61 * * * *"]), step_image)

    def ready() -> dict[str, Any] | None:
        status = get(namespace, "workflows", "bad-cron").get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

    condition = wait_for(ready, 20, "the Ready condition")
    assert (condition["status"], condition["reason"]) == ("False", "InvalidCronSchedule")
    assert "spec.triggers.crons[0]: '61 * * * *'" in condition["message"]
    assert "out of range" in condition["message"]
    table = subprocess.run(
        [str(KUBECTL), "get", "wf", "bad-cron", "-n", namespace],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    header, row = table.splitlines()
    assert row.split()[header.split().index("READY")] == "False", table
    assert not client.BatchV1Api().list_namespaced_cron_job(namespace).items
    # Fixing the expression makes it Ready and creates its CronJob, owned by the Workflow.
    custom().patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", "bad-cron",
        {"spec": {"triggers": {"crons": ["0 0 1 1 *"]}}},
    )  # fmt: skip
    wait_for(lambda: (ready() or {}).get("status") == "True", 20, "the workflow to be Ready")
    cronjobs = client.BatchV1Api().list_namespaced_cron_job(namespace).items
    assert [c.spec.schedule for c in cronjobs] == ["0 0 1 1 *"]
    assert cronjobs[0].metadata.owner_references[0].kind == "Workflow"
    status = get(namespace, "workflows", "bad-cron")["status"]
    assert status["nextScheduleTimes"][0].endswith("-01-01T00:00:00Z")
    # Suspending suspends the CronJob; removing the schedule deletes it.
    custom().patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", "bad-cron", {"spec": {"suspend": True}}
    )
    wait_for(
        lambda: client.BatchV1Api().list_namespaced_cron_job(namespace).items[0].spec.suspend,
        20,
        "the CronJob to be suspended",
    )
    custom().patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", "bad-cron", {"spec": {"triggers": {"crons": []}}}
    )
    wait_for(
        lambda: not client.BatchV1Api().list_namespaced_cron_job(namespace).items,
        20,
        "the CronJob to be deleted",
    )


def test_one_off_times_fire_once_across_operator_restarts(
    namespace: str, step_image: str, trigger_operator: Any
) -> None:
    at = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)
    stamp = at.isoformat().replace("+00:00", "Z")
    kube.apply_workflow(namespace, workflow("one-off", at=[stamp]), step_image)
    # The CLI's equivalent: a run with spec.scheduledAt.
    cli = subprocess.run(
        [sys.executable, "-m", "kubehatch.cli", "schedule", "two-step-workflow", "--at", stamp,
         "-n", namespace, "--input", '{"username": "later"}', "--name", "scheduled"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    kube.apply_workflow(namespace, workflow("two-step-workflow"), step_image)
    wait_for(
        lambda: (get(namespace, "workflows", "one-off").get("status") or {}).get(
            "nextScheduleTimes"
        ),
        20,
        "the workflow's next schedule time",
    )
    assert _time(get(namespace, "workflows", "one-off")["status"]["nextScheduleTimes"][0]) == at
    time.sleep(3)
    trigger_operator.kill()
    trigger_operator.start()
    fired = wait_for(
        lambda: runs(namespace, "kubehatch.dev/trigger-type=schedule"), 60, "the At run"
    )
    assert len(fired) == 1
    created = _time(fired[0]["metadata"]["creationTimestamp"])
    assert created >= at - timedelta(seconds=1)
    assert fired[0]["spec"]["triggeredBy"]["type"] == "Schedule"
    for name in (fired[0]["metadata"]["name"], "scheduled"):
        body = kube.wait_for_phase(namespace, name, {"Running", "Succeeded", "Failed"}, 60)
        started = _time(body["status"]["startedAt"])
        assert started >= at - timedelta(seconds=1), (name, started, at)
    # The time is recorded: a second restart after it fired creates nothing more.
    status = get(namespace, "workflows", "one-off")["status"]
    assert status["lastTriggered"] == {f"at:{stamp}": fired[0]["metadata"]["name"]}
    trigger_operator.kill()
    trigger_operator.start()
    time.sleep(8)
    assert len(runs(namespace, "kubehatch.dev/trigger-type=schedule")) == 1
    assert len(runs(namespace)) == 2


def test_every_minute_makes_exactly_one_run_per_minute(cron_namespace: Any) -> None:
    namespace, applied = cron_namespace
    (cronjob,) = client.BatchV1Api().list_namespaced_cron_job(namespace).items
    assert cronjob.metadata.owner_references[0].name == "every-minute"
    assert cronjob.spec.job_template.spec.template.spec.service_account_name == "kubehatch-trigger"
    # The first minute after the workflow was applied (and its CronJob created, at once).
    first = (applied + timedelta(seconds=5)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    # The module's other tests ran meanwhile; wait (if need be) until two minutes fired.
    settled = first + timedelta(minutes=1, seconds=70)
    wait_for(lambda: datetime.now(UTC) >= settled, 200, "two cron minutes to pass")
    by_minute: dict[datetime, list[str]] = {}
    for run in runs(namespace, "kubehatch.dev/trigger-type=cron"):
        scheduled = _time(run["spec"]["scheduledAt"])
        by_minute.setdefault(scheduled, []).append(run["metadata"]["name"])
        delay = (_time(run["metadata"]["creationTimestamp"]) - scheduled).total_seconds()
        assert 0 <= delay <= 70, (run["metadata"]["name"], delay)
        assert run["spec"]["triggeredBy"]["type"] == "Cron"
    now = datetime.now(UTC)
    due = [first + timedelta(minutes=i) for i in range(10)]
    due = [m for m in due if m + timedelta(seconds=70) <= now]
    assert len(due) >= 2
    assert all(applied - timedelta(minutes=1) < m <= now for m in by_minute), sorted(by_minute)
    for minute in due:
        assert len(by_minute.get(minute, [])) == 1, (minute, by_minute)  # exactly one each
    assert all(len(names) == 1 for names in by_minute.values()), by_minute
    delays = {
        name: (
            _time(get(namespace, "workflowruns", name)["metadata"]["creationTimestamp"]) - m
        ).total_seconds()
        for m, (name,) in sorted(by_minute.items())
    }
    print(f"cron runs, seconds after their minute: {delays}")
    status = get(namespace, "workflows", "every-minute")["status"]
    assert status["lastTriggered"]["cron:* * * * *"] in {n for (n,) in by_minute.values()}
    assert _time(status["nextScheduleTimes"][0]) > now - timedelta(minutes=2)


def test_an_event_never_starts_a_run_in_another_namespace(
    namespace: str, cron_namespace: tuple[str, datetime], step_image: str
) -> None:
    """Both namespaces are watched by the same operator; only the event's own one counts."""
    other, _ = cron_namespace
    kube.apply_workflow(other, workflow("elsewhere", events=["tenant:only"]), step_image)
    event = Client(namespace=namespace).event.push("tenant:only", {"username": "x"})
    status = handled(namespace, event)["status"]
    assert status["runs"] == []
    assert status["conditions"][0]["reason"] == "NoMatchingWorkflow"
    assert [r for r in runs(other) if r["spec"]["workflowRef"]["name"] == "elsewhere"] == []
