"""Python ergonomics on a real cluster: a decorator-style workflow with a typed input.

The input model's JSON Schema is in the Workflow (spec.inputSchema): the CLI refuses a bad
input before creating anything, and the operator fails a run created with kubectl whose
input does not fit, naming the field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from kubehatch import workflow_manifests
from kubehatch.api import wire
from tests.e2e import kube
from tests.e2e.support import kubehatch
from tests.e2e.workers import ergonomics

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

WORKFLOW = "typed-signup"
GOOD = {"username": "ada", "age": 36, "address": {"city": "London", "zip": 12345}}
BAD = {"username": "ada", "age": "old", "address": {"city": "London"}}


def _objects(namespace: str, plural: str) -> list[dict[str, Any]]:
    answer = client.CustomObjectsApi().list_namespaced_custom_object(
        wire.GROUP, wire.VERSION, namespace, plural
    )
    return list(answer["items"])


@pytest.fixture
def applied(op_namespace: str, step_image: str) -> str:
    (manifest,) = [
        m for m in workflow_manifests(ergonomics.worker) if m["metadata"]["name"] == WORKFLOW
    ]
    manifest = {**manifest, "spec": {**manifest["spec"], "worker": ergonomics.WORKER_REF}}
    assert manifest["spec"]["inputSchema"]["required"] == ["username", "age", "address"]
    kube.apply_workflow(op_namespace, manifest, step_image)
    return op_namespace


def test_a_decorator_style_workflow_with_a_typed_input_runs(applied: str) -> None:
    result = kubehatch(
        "run", WORKFLOW, "--input", json.dumps(GOOD), "--name", "good", "-n", applied
    )
    assert result.returncode == 0, result.stderr
    status = kube.wait_for_phase(applied, "good", {"Succeeded", "Failed"}, timeout=180)["status"]
    assert status["phase"] == "Succeeded", status
    shout = kube.output(applied, status["steps"]["shout"]["outputConfigMap"])
    assert shout == {"text": "HELLO ADA OF LONDON"}
    # The stored Workflow kept the schema, as the API server pruned nothing of it.
    stored = client.CustomObjectsApi().get_namespaced_custom_object(
        wire.GROUP, wire.VERSION, applied, wire.WORKFLOWS, WORKFLOW
    )
    assert stored["spec"]["inputSchema"]["properties"]["address"] == {"$ref": "#/$defs/Address"}


def test_a_bad_input_is_refused_by_the_cli_before_anything_exists(applied: str) -> None:
    for argv in (
        ("run", WORKFLOW, "--input", json.dumps(BAD)),
        ("schedule", WORKFLOW, "--at", "+1h", "--input", json.dumps(BAD)),
        ("event", "push", "e2e:signup", "--data", json.dumps(BAD)),
    ):
        result = kubehatch(*argv, "-n", applied)
        assert result.returncode == 1, (argv, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert "age: 'old' is not of type 'integer'" in result.stderr, result.stderr
        assert "address.zip: field required" in result.stderr, result.stderr
    assert _objects(applied, wire.WORKFLOW_RUNS) == []
    assert _objects(applied, wire.WORKFLOW_EVENTS) == []


def test_a_bad_input_created_with_kubectl_fails_the_run_naming_the_field(applied: str) -> None:
    kube.create_run(applied, "bad", WORKFLOW, BAD)
    status = kube.wait_for_phase(applied, "bad", {"Succeeded", "Failed"}, timeout=60)["status"]
    assert status["phase"] == "Failed"
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "InvalidInput"
    assert "age: 'old' is not of type 'integer'" in condition["message"]
    assert "address.zip: field required" in condition["message"]
    assert kube.jobs_of(applied, "bad") == []  # no step ever started
