"""The CLI's failures on a real cluster: one line saying why, exit status 1, nothing created.

No operator: what the CLI reads (Workflows, runs, the step pods by label) is made here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kubernetes import client

from kubehatch.api import wire
from tests.e2e.support import kubehatch, wait_for

pytestmark = pytest.mark.e2e

# Nothing in the test clusters routes off the machine, and .invalid never resolves.
UNPULLABLE = "registry.invalid/kubehatch/missing:1"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def runs_in(namespace: str) -> list[object]:
    answer = client.CustomObjectsApi().list_namespaced_custom_object(
        wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_RUNS
    )
    return list(answer["items"])


@pytest.mark.usefixtures("crds")
def test_run_of_a_missing_workflow_says_so_and_creates_nothing(namespace: str) -> None:
    line = one_line_error(kubehatch("run", "no-such-workflow", "-n", namespace))
    assert line == (
        f"kubehatch run: workflow 'no-such-workflow' does not exist in namespace "
        f"'{namespace}'; kubectl get workflows -n {namespace} lists them"
    )
    assert runs_in(namespace) == []
    # A run scheduled for later may come before its Workflow (it waits for it).
    later = kubehatch("schedule", "no-such-workflow", "--at", "+1h", "-n", namespace)
    assert later.returncode == 0, later.stderr
    assert len(runs_in(namespace)) == 1


@pytest.mark.usefixtures("crds")
def test_an_input_over_the_limit_is_refused_before_anything_is_created(
    namespace: str, tmp_path: Path
) -> None:
    big = tmp_path / "input.json"
    big.write_text(json.dumps({"blob": "x" * (1024 * 1024)}))
    for argv in (
        ("run", "any", "--input", f"@{big}"),
        ("schedule", "any", "--at", "+1h", "--input", f"@{big}"),
        ("event", "push", "any:key", "--data", f"@{big}"),
    ):
        line = one_line_error(kubehatch(*argv, "-n", namespace))
        assert "over the limit" in line and "pass a reference to the data instead" in line
    assert runs_in(namespace) == []
    events = client.CustomObjectsApi().list_namespaced_custom_object(
        wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_EVENTS
    )
    assert events["items"] == []


@pytest.mark.usefixtures("crds")
def test_describe_and_wait_of_a_missing_run_say_so_in_one_line(namespace: str) -> None:
    for command in ("describe", "wait", "cancel"):
        line = one_line_error(kubehatch(command, "no-such-run", "-n", namespace))
        assert line.startswith(
            f"kubehatch {command}: workflowrun 'no-such-run' not found in namespace '{namespace}'"
        ), line


def test_logs_of_a_pod_that_cannot_pull_its_image_show_why(namespace: str) -> None:
    """A step Job whose image cannot be pulled: made here, labelled as the operator does."""
    labels = {wire.LABEL_RUN: "broken", wire.LABEL_STEP: "first"}
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="broken-first-1", labels=labels),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="step", image=UNPULLABLE)],
                ),
            ),
        ),
    )
    client.BatchV1Api().create_namespaced_job(namespace, job)
    core = client.CoreV1Api()
    pull_errors = ("ErrImagePull", "ImagePullBackOff")

    def pulling_failed() -> bool:
        for pod in core.list_namespaced_pod(namespace, label_selector="job-name").items:
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting if status.state else None
                if waiting is not None and waiting.reason in pull_errors:
                    return True
        return False

    wait_for(pulling_failed, 90, "the pod to fail pulling its image")
    for argv in (("broken",), ("broken", "first")):
        result = kubehatch("logs", *argv, "-n", namespace)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stdout.strip().splitlines()
        assert lines[0] == "==> broken-first-1 (Pending) <==", result.stdout
        assert lines[1].startswith("not started: "), result.stdout
        assert any(reason in lines[1] for reason in pull_errors), result.stdout
        assert UNPULLABLE in result.stdout

    # A step without pods, of a run that does not exist: the run's absence is the error.
    line = one_line_error(kubehatch("logs", "broken", "other", "-n", namespace))
    assert "workflowrun 'broken' not found" in line or "the cluster has no kubehatch" in line
