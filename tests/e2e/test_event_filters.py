"""Filtered event triggers, events pushed from a JSON-lines file, and a cron schedule in a
time zone, on a real cluster (issue 14, items 5 and 6)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubehatch import workflow_manifests
from kubehatch.client import Client
from tests.e2e import kube
from tests.e2e.support import kubehatch, wait_for
from tests.e2e.test_triggers import create_trigger_service_account, get, handled, runs
from tests.e2e.test_triggers import trigger_operator as trigger_operator  # the fixture
from tests.e2e.workers import eventfilters

pytestmark = [pytest.mark.e2e]

MANIFESTS = {
    m["metadata"]["name"]: m
    for m in workflow_manifests(eventfilters.worker, worker_ref=eventfilters.WORKER_REF)
}
FILTER = "event.data.amount > 100 && event.metadata.source == 'web'"


@pytest.fixture
def namespace(op_namespace: str, trigger_operator: Any, step_image: str) -> str:
    create_trigger_service_account(op_namespace)
    for manifest in MANIFESTS.values():
        kube.apply_workflow(op_namespace, manifest, step_image)
    return op_namespace


def condition(event: dict[str, Any]) -> dict[str, Any]:
    (found,) = event["status"]["conditions"]
    return found


def test_a_filter_decides_which_matching_events_start_a_run(namespace: str) -> None:
    api = Client(namespace=namespace)
    small = api.event.push("order:paid", {"amount": 50}, metadata={"source": "web"})
    broken = api.event.push("order:paid", {"total": 500}, metadata={"source": "web"})
    big = api.event.push("order:paid", {"amount": 150}, metadata={"source": "web"})

    # Matches the key, filter false: no run.
    filtered = handled(namespace, small)
    assert filtered["status"].get("runs", []) == []
    assert condition(filtered)["reason"] == "FilteredOut", condition(filtered)

    # Matches the key, the filter fails (no amount): no run, and the event says why.
    failed = handled(namespace, broken)
    assert failed["status"].get("runs", []) == []
    found = condition(failed)
    assert (found["status"], found["reason"]) == ("False", "FilterFailed"), found
    assert "workflow 'big-web-orders'" in found["message"]
    assert FILTER in found["message"] and "amount" in found["message"]
    warnings = wait_for(
        lambda: [
            e
            for e in client.CoreV1Api().list_namespaced_event(namespace).items
            if e.involved_object.name == broken and e.reason == "FilterFailed"
        ],
        30,
        "the FilterFailed Event",
    )
    assert warnings[0].type == "Warning"

    # Passes the filter: one run, whose step sees the event's data and metadata.
    (run,) = handled(namespace, big)["status"]["runs"]
    body = kube.wait_for_phase(namespace, run, {"Succeeded", "Failed"}, timeout=180)
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert body["spec"]["additionalMetadata"] == {"source": "web"}
    output = kube.output(namespace, body["status"]["steps"]["record"]["outputConfigMap"])
    assert output == {"input": {"amount": 150}, "metadata": {"source": "web"}}
    assert [
        r["metadata"]["name"] for r in runs(namespace, "kubehatch.dev/workflow=big-web-orders")
    ] == [run]
    status = get(namespace, "workflows", "big-web-orders")["status"]
    assert status["lastTriggered"] == {f"event:order:* if {FILTER}": run}


def test_a_jsonl_push_of_three_events_starts_three_runs(namespace: str, tmp_path: Path) -> None:
    lines = [{"key": "batch:item", "data": {"n": n}, "metadata": {"batch": "b1"}} for n in range(3)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    pushed = kubehatch("event", "push", "--file", str(path), "-n", namespace)
    assert pushed.returncode == 0, pushed.stderr
    assert "3 of 3 event(s) pushed" in pushed.stdout, pushed.stdout
    names = [
        line.split("workflowevent/")[1].split()[0]
        for line in pushed.stdout.splitlines()
        if "workflowevent/" in line
    ]
    assert len(names) == 3
    started = [run for name in names for run in handled(namespace, name)["status"]["runs"]]
    assert len(started) == 3
    inputs = []
    for run in started:
        body = kube.wait_for_phase(namespace, run, {"Succeeded", "Failed"}, timeout=180)
        assert body["status"]["phase"] == "Succeeded", body["status"]
        output = kube.output(namespace, body["status"]["steps"]["record"]["outputConfigMap"])
        assert output["metadata"] == {"batch": "b1"}
        inputs.append(output["input"]["n"])
    assert sorted(inputs) == [0, 1, 2]

    # A bad line refuses the whole file, naming the line: nothing is pushed.
    path.write_text('{"key": "batch:item"}\n{"key": "batch:item", "data": [1]}\nnot json\n')
    refused = kubehatch("event", "push", "--file", str(path), "-n", namespace)
    assert refused.returncode != 0
    assert "line 2: data must be a JSON object" in refused.stderr, refused.stderr
    assert "line 3: not valid JSON" in refused.stderr, refused.stderr
    assert len(runs(namespace, "kubehatch.dev/workflow=batch")) == 3


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_zoned_cron_gets_a_cronjob_in_its_zone_and_status_in_that_zone(namespace: str) -> None:
    batch = client.BatchV1Api()
    (cronjob,) = wait_for(
        lambda: (
            batch.list_namespaced_cron_job(
                namespace, label_selector="kubehatch.dev/workflow=office-hours"
            ).items
        ),
        60,
        "the CronJob of office-hours",
    )
    assert cronjob.spec.time_zone == "Europe/Paris"
    assert cronjob.spec.schedule == "0 9 * * 1-5"
    args = cronjob.spec.job_template.spec.template.spec.containers[0].args
    assert args[args.index("--time-zone") + 1] == "Europe/Paris"

    def scheduled() -> dict[str, Any] | None:
        status = get(namespace, "workflows", "office-hours").get("status") or {}
        return status if status.get("cronSchedules") else None

    status = wait_for(scheduled, 60, "the next times of office-hours")
    (schedule,) = status["cronSchedules"]
    assert (schedule["schedule"], schedule["timeZone"]) == ("0 9 * * 1-5", "Europe/Paris")
    times = [_time(t) for t in schedule["nextTimes"]]
    assert len(times) == 3
    for moment in times:  # 09:00 on a weekday, Paris time, whatever the season
        assert moment.utcoffset() is not None
        assert (moment.hour, moment.minute) == (9, 0) and moment.weekday() < 5
        assert moment.utcoffset().total_seconds() in (3600, 7200)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready

    listed = kubehatch("get", "workflows", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith("office-hours"))
    assert "09:00 CE" in line and "(Europe/Paris, 0 9 * * 1-5)" in line, line

    # A zone the CRD cannot check: the operator reports it on the Ready condition.
    bad = json.loads(json.dumps(MANIFESTS["office-hours"]))
    bad["metadata"]["name"] = "bad-zone"
    bad["spec"]["triggers"]["zonedCrons"][0]["timeZone"] = "Europe/Pariss"
    kube.apply_workflow(namespace, bad, "localhost/kubehatch/e2e:unused")

    def not_ready() -> dict[str, Any] | None:
        conditions = (get(namespace, "workflows", "bad-zone").get("status") or {}).get(
            "conditions"
        ) or []
        found = next((c for c in conditions if c["type"] == "Ready"), None)
        return found if found and found["status"] == "False" else None

    refused = wait_for(not_ready, 60, "bad-zone to be not Ready")
    assert refused["reason"] == "InvalidTimeZone", refused
    assert "spec.triggers.zonedCrons[0].timeZone: 'Europe/Pariss'" in refused["message"]
    assert "did you mean 'Europe/Paris'" in refused["message"]
    assert not batch.list_namespaced_cron_job(
        namespace, label_selector="kubehatch.dev/workflow=bad-zone"
    ).items
