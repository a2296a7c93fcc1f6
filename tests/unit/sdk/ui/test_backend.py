"""The dashboard's API layer over a fake Kubernetes API: paging, filters, runs, outputs,
actions and denials, live streams."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from kubehatch.api import outputs
from kubehatch.ui import live, views
from kubehatch.ui.backend import SCAN_BUDGET, Backend, UiError
from tests.unit.sdk.ui.fakekube import FakeApiClient, run

RUNS = "/apis/kubehatch.dev/v1alpha1/namespaces/default/workflowruns"


@pytest.fixture
def fake() -> FakeApiClient:
    return FakeApiClient()


@pytest.fixture
def backend(fake: FakeApiClient) -> Backend:
    return Backend(fake)


def lists(fake: FakeApiClient) -> list[dict[str, str]]:
    return [q for m, p, q in fake.calls if m == "GET" and p == RUNS and "watch" not in q]


def test_runs_page_through_the_api_servers_limit_and_continue(fake, backend) -> None:
    for i in range(120):
        fake.add(
            "workflowruns", run(f"r{i:03d}", created=f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}Z")
        )
    first = backend.runs("default", limit=50)
    assert len(first.items) == 50 and first.remaining == 70 and first.continue_token
    # Newest first within the page.
    created = [r["created"] for r in first.items]
    assert created == sorted(created, reverse=True)
    second = backend.runs("default", limit=50, token=first.continue_token)
    third = backend.runs("default", limit=50, token=second.continue_token)
    assert len(third.items) == 20 and third.continue_token is None
    names = {r["name"] for page in (first, second, third) for r in page.items}
    assert len(names) == 120
    # Every request asked for one page, never for everything.
    assert [q["limit"] for q in lists(fake)] == ["50", "50", "50"]


def test_filters_are_the_api_servers_selectors(fake, backend) -> None:
    fake.add("workflowruns", run("a", "etl", phase="Queued"))
    fake.add("workflowruns", run("b", "etl", phase="Running"))
    fake.add("workflowruns", run("c", "other", phase="Queued"))
    page = backend.runs(
        "default", workflow="etl", phase="Queued", selector="kubehatch.dev/workflow=etl"
    )
    assert [r["name"] for r in page.items] == ["a"]
    query = lists(fake)[-1]
    assert query["fieldSelector"] == "spec.workflowRef.name=etl,status.phase=Queued"
    assert query["labelSelector"] == "kubehatch.dev/workflow=etl"


def test_a_time_filter_scans_a_bounded_number_of_runs(fake, backend) -> None:
    from datetime import UTC, datetime

    for i in range(SCAN_BUDGET + 500):
        fake.add("workflowruns", run(f"old{i:05d}", created="2024-01-01T00:00:00Z"))
    fake.add("workflowruns", run("zz-new", created="2025-06-01T00:00:00Z"))
    since = datetime(2025, 1, 1, tzinfo=UTC)
    page = backend.runs("default", since=since, limit=100)
    assert page.items == [] and page.scanned == SCAN_BUDGET and page.continue_token
    rest = backend.runs("default", since=since, limit=100, token=page.continue_token)
    assert [r["name"] for r in rest.items] == ["zz-new"] and rest.continue_token is None


def test_all_namespaces_lists_cluster_wide(fake, backend) -> None:
    fake.add("workflowruns", run("a", namespace="one"))
    fake.add("workflowruns", run("b", namespace="two"))
    page = backend.runs(None)
    assert {(r["namespace"], r["name"]) for r in page.items} == {("one", "a"), ("two", "b")}
    assert fake.calls[-1][1] == "/apis/kubehatch.dev/v1alpha1/workflowruns"


def test_a_queued_run_says_why(fake, backend) -> None:
    condition = {
        "type": "Succeeded",
        "status": "Unknown",
        "reason": "Queued",
        "message": "2 runs of key 'ada' are running",
    }
    fake.add("workflowruns", run("q", phase="Queued", conditions=[condition]))
    (row,) = backend.runs("default").items
    assert row["phase"] == "Queued" and row["reason"] == "Queued"
    assert row["message"] == "2 runs of key 'ada' are running"


def test_a_run_comes_with_its_workflow_snapshot_or_the_current_workflow(fake, backend) -> None:
    steps = [{"name": "a"}, {"name": "b", "parents": ["a"]}]
    fake.add(
        "workflowruns",
        run("started", phase="Running", steps={"a": {"phase": "Running"}}, spec_steps=steps),
    )
    fake.add("workflowruns", run("waiting"))
    fake.add("workflows", {"metadata": {"name": "etl"}, "spec": {"steps": [{"name": "x"}]}})
    started = backend.run("default", "started")
    assert started["workflowSource"] == "snapshot" and started["workflowSpec"]["steps"] == steps
    assert "managedFields" not in started["run"]["metadata"]
    waiting = backend.run("default", "waiting")
    assert waiting["workflowSource"] == "current"
    assert waiting["workflowSpec"]["steps"] == [{"name": "x"}]


def test_more_steps_than_a_workflow_may_have_still_show(fake, backend) -> None:
    """The dashboard reads runs leniently: no pydantic model stands in the way."""
    steps = [{"name": f"s{i}", "parents": [f"s{i - 1}"] if i else []} for i in range(1000)]
    fake.add(
        "workflowruns",
        run(
            "big",
            phase="Running",
            spec_steps=steps,
            steps={f"s{i}": {"phase": "Succeeded"} for i in range(1000)},
        ),
    )
    found = backend.run("default", "big")
    assert len(found["workflowSpec"]["steps"]) == 1000


def test_latest_runs_of_a_workflow_read_metadata_only(fake, backend) -> None:
    for i in range(30):
        fake.add("workflowruns", run(f"r{i:02d}", created=f"2025-01-01T00:00:{i:02d}Z"))
    page = backend.recent_runs("default", "etl", count=5)
    assert [r["name"] for r in page.items] == ["r29", "r28", "r27", "r26", "r25"]
    assert page.items[0]["phase"] == "Pending"


def _configmap(name: str, encoded: outputs.Encoded) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "data": dict(encoded.data)}
    if encoded.binary:
        body["binaryData"] = {k: base64.b64encode(v).decode() for k, v in encoded.binary.items()}
    return body


@pytest.mark.parametrize("size", [10, 400_000, 3_000_000])
def test_step_outputs_are_decoded_plain_gzip_or_parts(fake, backend, size) -> None:
    value = {"blob": base64.b64encode(os.urandom(size)).decode()[:size] if size > 100 else "x"}
    encoded = outputs.encode(json.dumps(value, separators=(",", ":")))
    fake.add("configmaps", _configmap("job-output", encoded))
    for number, chunk in enumerate(encoded.parts, start=1):
        part = {
            "metadata": {"name": f"job-output-{number}"},
            "binaryData": {outputs.PART_KEY: base64.b64encode(chunk).decode()},
        }
        fake.add("configmaps", part)
    shown = backend.step_output("default", "job-output", limit=outputs.MAX_OUTPUT_BYTES)
    assert shown == {"output": value}
    if size > 2_000_000:
        assert encoded.parts  # the split form was exercised
        assert (
            "more than the dashboard reads" in backend.step_output("default", "job-output")["error"]
        )


def test_actions_act_and_a_denial_carries_the_api_servers_reason(fake, backend) -> None:
    fake.add("workflowruns", run("r", phase="Running"))
    backend.cancel("default", "r")
    assert fake.objects[("workflowruns", "default", "r")]["spec"]["cancel"] is True
    fake.denied.add(("patch", "workflowruns"))
    with pytest.raises(UiError) as caught:
        from kubehatch.ui.backend import as_ui_error

        try:
            backend.cancel("default", "r")
        except Exception as err:
            raise as_ui_error(err) from err
    err = caught.value
    assert err.status == 403 and "forbidden: you may not patch workflowruns" in err.message
    assert err.reason and 'User "viewer" cannot patch resource "workflowruns"' in err.reason


def test_a_denied_read_is_a_403_with_the_reason(fake, backend) -> None:
    fake.denied.add(("list", "workflowruns"))
    with pytest.raises(UiError) as caught:
        backend.runs("default")
    assert caught.value.status == 403 and "cannot list" in str(caught.value.reason)


def test_start_replay_and_push(fake, backend) -> None:
    fake.add("workflows", {"metadata": {"name": "etl"}, "spec": {"steps": [{"name": "x"}]}})
    name = backend.start_run("default", "etl", {"user": "ada"})
    made = fake.objects[("workflowruns", "default", name)]
    assert made["spec"]["input"] == {"user": "ada"} and made["spec"]["workflowRef"]["name"] == "etl"
    again = backend.replay("default", name)
    assert fake.objects[("workflowruns", "default", again)]["spec"]["input"] == {"user": "ada"}
    event = backend.push_event("default", "user:created", {"user": "bob"})
    assert fake.objects[("workflowevents", "default", event)]["spec"]["key"] == "user:created"


class Collect(live.Stream):
    """A stream that keeps what is sent, and stops after ``count`` events."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.sent: list[tuple[str, Any]] = []
        self.count = count

    def send(self, event: str, data: Any) -> None:
        if self.stopped.is_set():
            raise live.Stopped
        self.sent.append((event, data))
        if len(self.sent) >= self.count:
            self.stopped.set()  # what a closed page does: the next watch is not opened


def test_a_live_run_sends_the_run_then_only_the_steps_that_changed(fake, backend) -> None:
    steps = {f"s{i}": {"phase": "Running"} for i in range(100)}
    spec = [{"name": f"s{i}"} for i in range(100)]
    body = fake.add("workflowruns", run("r", phase="Running", steps=steps, spec_steps=spec))
    changed = json.loads(json.dumps(body))
    changed["status"]["steps"]["s7"] = {"phase": "Succeeded", "attempts": 1}
    fake.watch_events.append({"type": "MODIFIED", "object": changed})
    stream = Collect(2)
    with pytest.raises(live.Stopped):
        live.follow_run(backend, "default", "r", stream)
    (first, found), (second, patch) = stream.sent
    assert first == "run" and len(found["run"]["status"]["steps"]) == 100
    assert second == "patch" and patch["steps"] == {"s7": {"phase": "Succeeded", "attempts": 1}}
    assert "input" not in patch["spec"] and "workflowSpec" not in patch["status"]
    watch = next(q for m, p, q in fake.calls if q.get("watch"))
    assert watch["fieldSelector"] == "metadata.name=r" and watch["resourceVersion"]


def test_an_expired_watch_reads_the_run_afresh(fake, backend) -> None:
    fake.add("workflowruns", run("r", phase="Running"))
    fake.watch_events.append({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
    stream = Collect(2)
    with pytest.raises(live.Stopped):
        live.follow_run(backend, "default", "r", stream)
    assert [event for event, _ in stream.sent] == ["run", "run"]


def test_the_runs_list_watch_starts_from_now_not_from_the_beginning(fake, backend) -> None:
    for i in range(5):
        fake.add("workflowruns", run(f"r{i}"))
    fake.watch_events.append({"type": "ADDED", "object": run("new", phase="Pending")})
    stream = Collect(1)
    with pytest.raises(live.Stopped):
        live.follow_runs(backend, "default", stream, fields="spec.workflowRef.name=etl")
    assert stream.sent == [
        ("run", {"type": "ADDED", "run": views.run_summary(run("new", phase="Pending"))})
    ]
    watch = next(q for m, p, q in fake.calls if q.get("watch"))
    assert watch["resourceVersion"] and watch["fieldSelector"] == "spec.workflowRef.name=etl"
    # The resourceVersion came from a one-item page.
    assert lists(fake)[0]["limit"] == "1"
