"""Webhooks on a real cluster: the chart's receiver turns a signed POST into a run.

The chart is installed in a namespace of its own (operator and receiver from the operator
image built here, webhooks.enabled, one GitHub source); the test reaches the receiver's
Service through `kubectl port-forward`, as the chart's NOTES suggest. A correctly signed
delivery creates a WorkflowEvent that starts the two-step workflow listening for
github:push; a tampered one gets 401 and creates nothing. The release is uninstalled and
the namespace deleted at the end.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.support import wait_for
from tests.e2e.test_chart import (  # noqa: F401 (fixtures)
    CHART,
    GROUP,
    VERSION,
    Release,
    helm_bin,
    images,
    two_step_workflow,
)

pytestmark = pytest.mark.e2e

SECRET = "e2e-signing-secret"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SOURCE = {
    "name": "github",
    "secret": {"name": "github-webhook"},
    "signature": "github",
    "key": {"header": "X-GitHub-Event"},
    "keyPrefix": "github:",
}


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi()


def events(namespace: str) -> list[dict[str, Any]]:
    return custom().list_namespaced_custom_object(GROUP, VERSION, namespace, "workflowevents")[
        "items"
    ]


@pytest.fixture
def installed(
    helm_bin: str,  # noqa: F811
    kubeconfig: str,
    images: dict[str, str],  # noqa: F811
) -> Iterator[Release]:
    """The chart with the receiver, in a namespace of its own; uninstalled afterwards."""
    core = client.CoreV1Api()
    namespace = f"e2e-wh-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    rel = Release(helm_bin, kubeconfig, namespace, namespace)
    try:
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="github-webhook"),
                string_data={"secret": SECRET + "\n"},  # a trailing newline, as `echo` leaves
            ),
        )
        values = {
            "image": {"tag": images["KUBEHATCH_IMAGE_TAG"]},
            "watchNamespaces": [namespace],
            "webhooks": {"enabled": True, "sources": [SOURCE]},
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "values.json"
            path.write_text(json.dumps(values))
            started = time.monotonic()
            rel.run("install", rel.name, str(CHART), "-f", str(path), "--wait",
                    "--timeout", "120s")  # fmt: skip
            print(f"installed in {time.monotonic() - started:.1f}s")
        yield rel
    finally:
        print(receiver_logs(namespace))
        print(rel.operator_logs())
        subprocess.run(
            [helm_bin, "uninstall", rel.name, "-n", namespace, "--kubeconfig", kubeconfig,
             "--wait", "--timeout", "60s"],
            capture_output=True, timeout=90,
        )  # fmt: skip
        core.delete_namespace(namespace, propagation_policy="Background")


def receiver_logs(namespace: str) -> str:
    core = client.CoreV1Api()
    selector = "app.kubernetes.io/component=webhooks"
    out = []
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        try:
            text = core.read_namespaced_pod_log(pod.metadata.name, namespace)
        except client.exceptions.ApiException as err:
            text = f"(no log: {err.reason})"
        lines = [line for line in text.splitlines() if "/healthz" not in line]
        out.append(f"--- {pod.metadata.name}\n" + "\n".join(lines[-40:]))
    return "\n".join(out)


@pytest.fixture
def port_forward(installed: Release, kubeconfig: str) -> Iterator[int]:
    """A local port forwarded to the receiver's Service (kubectl port-forward)."""
    service = f"service/{installed.fullname}-webhooks"
    proc = subprocess.Popen(
        ["kubectl", "--kubeconfig", kubeconfig, "-n", installed.namespace, "port-forward",
         "--address", "127.0.0.1", service, ":80"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found, (
            f"kubectl port-forward said: {line}{proc.stdout.read() if proc.poll() else ''}"
        )
        yield int(found.group(1))
    finally:
        proc.terminate()
        proc.wait(10)


def post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/webhooks/github", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def github_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": DELIVERY,
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def test_a_signed_delivery_starts_a_run_and_a_tampered_one_does_not(
    installed: Release,
    port_forward: int,
    images: dict[str, str],  # noqa: F811
) -> None:
    namespace = installed.namespace
    workflow = two_step_workflow(images["KUBEHATCH_STEP_IMAGE"])
    workflow["spec"]["triggers"] = {"events": ["github:push"]}
    custom().create_namespaced_custom_object(GROUP, VERSION, namespace, "workflows", workflow)

    # Tampered: signed over one body, another sent. Refused, nothing created.
    body = json.dumps({"username": "ada", "ref": "refs/heads/main"}).encode()
    status, answer = post(port_forward, body.replace(b"ada", b"eve"), github_headers(body))
    assert (status, answer) == (
        401,
        {"error": "signature does not match the body and the source's secret", "source": "github"},
    )
    status, answer = post(port_forward, body, github_headers(body, secret="wrong"))
    assert status == 401
    assert events(namespace) == []

    # Signed: 202 with the event's name; the event starts the workflow.
    status, answer = post(port_forward, body, github_headers(body))
    assert status == 202, answer
    assert answer["key"] == "github:push" and answer["delivery"] == DELIVERY
    name = answer["event"]
    (event,) = events(namespace)
    assert event["metadata"]["name"] == name
    assert event["spec"]["payload"] == {"username": "ada", "ref": "refs/heads/main"}
    assert event["spec"]["additionalMetadata"] == {
        "webhook-source": "github",
        "webhook-delivery": DELIVERY,
    }

    def started() -> list[str] | None:
        body = custom().get_namespaced_custom_object(
            GROUP, VERSION, namespace, "workflowevents", name
        )
        return (body.get("status") or {}).get("runs") or None

    (run_name,) = wait_for(started, 60, f"event {name} to start a run")

    def finished() -> dict[str, Any] | None:
        run = custom().get_namespaced_custom_object(
            GROUP, VERSION, namespace, "workflowruns", run_name
        )
        phase = (run.get("status") or {}).get("phase")
        return run if phase in ("Succeeded", "Failed", "TimedOut", "Cancelled") else None

    run = wait_for(finished, 120, f"run {run_name} to finish")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["spec"]["workflowRef"]["name"] == "two-step-workflow"
    assert run["spec"]["input"]["username"] == "ada"
    assert run["spec"]["additionalMetadata"]["webhook-delivery"] == DELIVERY

    # Still exactly one event, one run: the refused deliveries left nothing behind.
    assert [e["metadata"]["name"] for e in events(namespace)] == [name]
    runs = custom().list_namespaced_custom_object(GROUP, VERSION, namespace, "workflowruns")
    assert [r["metadata"]["name"] for r in runs["items"]] == [run_name]
