"""The dashboard's HTTP server over a fake Kubernetes API: routes, errors, guards, pages,
server-sent events, and tokens in the in-cluster mode."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from kubehatch.ui import STATIC
from kubehatch.ui.access import TokenAccess, bearer_token
from kubehatch.ui.backend import Backend, UiError
from kubehatch.ui.server import make_server
from tests.unit.sdk.ui.fakekube import FakeApiClient, run


class FakeAccess:
    tokens = False
    user = "tester"
    namespace = "default"

    def __init__(self, fake: FakeApiClient) -> None:
        self._backend = Backend(fake)

    def backend(self, headers: Any) -> Backend:
        return self._backend


@pytest.fixture
def fake() -> FakeApiClient:
    return FakeApiClient()


@pytest.fixture
def base(fake: FakeApiClient) -> Iterator[str]:
    server = make_server(FakeAccess(fake), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


ACT = {"X-Kubehatch-Request": "1", "Content-Type": "application/json"}


def test_pages_and_their_assets_are_served_from_the_package(base) -> None:
    status, body, headers = call(f"{base}/")
    assert status == 200 and b'<script type="module" src="/static/app.js">' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name in ("app.js", "dag.js", "run.js", "runs.js", "app.css"):
        assert (STATIC / name).is_file()
        status, _, headers = call(f"{base}/static/{name}")
        assert status == 200, name
    assert call(f"{base}/static/../backend.py")[0] == 404
    assert call(f"{base}/static/%2e%2e/backend.py")[0] == 404


def test_runs_are_listed_a_page_at_a_time(fake, base) -> None:
    for i in range(7):
        fake.add("workflowruns", run(f"r{i}"))
    status, body, _ = call(f"{base}/api/runs?limit=5&phase=&workflow=etl")
    page = json.loads(body)
    assert status == 200 and len(page["items"]) == 5 and page["continue"]
    status, body, _ = call(f"{base}/api/runs?limit=5&continue={page['continue']}")
    assert len(json.loads(body)["items"]) == 2
    assert call(f"{base}/api/runs?since=yesterday")[0] == 400


def test_a_run_its_output_and_a_missing_run(fake, base) -> None:
    fake.add("workflowruns", run("r", phase="Running", steps={"a": {"phase": "Succeeded",
             "outputConfigMap": "job-a-output"}}, spec_steps=[{"name": "a"}]))  # fmt: skip
    fake.add("configmaps", {"metadata": {"name": "job-a-output"}, "data": {"output.json": "[1]"}})
    status, body, _ = call(f"{base}/api/runs/default/r")
    assert status == 200 and json.loads(body)["workflowSpec"]["steps"] == [{"name": "a"}]
    assert json.loads(call(f"{base}/api/runs/default/r/steps/a/output")[1]) == {"output": [1]}
    status, body, _ = call(f"{base}/api/runs/default/nope")
    assert status == 404 and "not found" in json.loads(body)["error"]


def test_actions_need_the_request_header_and_a_denial_says_why(fake, base) -> None:
    fake.add("workflowruns", run("r", phase="Running"))
    assert call(f"{base}/api/runs/default/r/cancel", "POST", {})[0] == 403  # no header: CSRF
    assert fake.objects[("workflowruns", "default", "r")]["spec"].get("cancel") is None
    status, body, _ = call(f"{base}/api/runs/default/r/cancel", "POST", {}, ACT)
    assert status == 200 and fake.objects[("workflowruns", "default", "r")]["spec"]["cancel"]
    fake.denied.add(("patch", "workflowruns"))
    status, body, _ = call(f"{base}/api/runs/default/r/cancel", "POST", {}, ACT)
    answer = json.loads(body)
    assert status == 403 and answer["error"].startswith("forbidden: you may not patch")
    assert 'cannot patch resource "workflowruns"' in answer["reason"]


def test_retry_of_a_running_run_is_refused_with_the_clients_words(fake, base) -> None:
    fake.add("workflowruns", run("r", phase="Running"))
    status, body, _ = call(f"{base}/api/runs/default/r/retry", "POST", {}, ACT)
    assert status == 400 and "has not finished" in json.loads(body)["error"]


def test_start_a_run_and_push_an_event(fake, base) -> None:
    fake.add("workflows", {"metadata": {"name": "etl"}, "spec": {"steps": [{"name": "a"}]}})
    status, body, _ = call(f"{base}/api/runs/default", "POST",
                           {"workflow": "etl", "input": {"x": 1}}, ACT)  # fmt: skip
    assert status == 201 and json.loads(body)["name"].startswith("etl-")
    status, body, _ = call(f"{base}/api/events/default", "POST",
                           {"key": "user:created", "payload": {}}, ACT)  # fmt: skip
    assert status == 201


def test_a_foreign_host_header_is_refused_on_loopback(base) -> None:
    """DNS rebinding: a page of evil.example resolving to 127.0.0.1 gets nothing."""
    assert call(f"{base}/api/config", headers={"Host": "evil.example"})[0] == 421
    assert call(f"{base}/api/config", headers={"Host": "localhost:1"})[0] == 200


def test_a_live_run_is_an_event_stream(fake, base) -> None:
    fake.add("workflowruns", run("r", phase="Running"))
    request = urllib.request.Request(f"{base}/api/watch/runs/default/r")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"] == "text/event-stream"
        assert answer.readline() == b"retry: 3000\n"
        answer.readline()
        assert answer.readline() == b"event: run\n"
        assert (
            json.loads(answer.readline().removeprefix(b"data: "))["run"]["metadata"]["name"] == "r"
        )


def test_in_the_cluster_each_request_uses_its_own_token() -> None:
    access = TokenAccess(host="https://10.0.0.1:443", ca_file="")
    with pytest.raises(UiError) as caught:
        access.backend({})
    assert caught.value.status == 401
    one = access.backend({"Authorization": "Bearer token-one"})
    two = access.backend({"Cookie": "a=b; kubehatch-token=token-two"})
    assert one is access.backend({"Authorization": "Bearer token-one"})  # kept
    assert one.api_client.configuration.api_key == {"authorization": "Bearer token-one"}
    assert two.api_client.configuration.api_key == {"authorization": "Bearer token-two"}
    assert bearer_token({"Authorization": "Basic x"}) is None
