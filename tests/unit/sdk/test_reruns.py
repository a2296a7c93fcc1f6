"""kubehatch retry / replay / suspend / resume, as the client writes them (no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from kubehatch import _pausing, _reruns
from kubehatch.api.workflowrun import WorkflowRun
from kubehatch.errors import KubehatchError


class FakeClient:
    namespace = "ns"

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = WorkflowRun.model_validate(run)
        self.patches: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []

    def get_run(self, name: str) -> WorkflowRun:
        return self.run

    def _patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(body)
        return body

    def _create(self, plural: str, body: dict[str, Any]) -> str:
        self.created.append(body)
        return "r1-again"


def run(phase: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "r1", "namespace": "ns"},
        "spec": {"workflowRef": {"name": "wf"}, "input": {"a": 1}, "priority": 2, **spec},
        "status": {"phase": phase, "steps": {"first": {"phase": "Succeeded"}}},
    }


def test_a_retry_writes_the_request_and_the_label() -> None:
    fake = FakeClient(run("Failed"))
    request = _reruns.retry(fake, "r1", from_step="first")
    (patch,) = fake.patches
    assert patch["metadata"]["labels"] == {"kubehatch.dev/retry": "requested"}
    assert patch["spec"]["retry"] == {"id": request, "fromStep": "first"}


@pytest.mark.parametrize(
    ("phase", "spec", "step", "message"),
    [
        ("Running", {}, None, "has not finished (Running)"),
        ("Cancelled", {"cancel": True}, None, "kubehatch replay r1"),
        ("Failed", {}, "nope", "has no step 'nope' (steps: first)"),
        ("Succeeded", {}, None, "kubehatch retry r1 --from STEP"),
    ],
)
def test_retries_that_cannot_work_are_refused_before_anything_is_written(
    phase: str, spec: dict[str, Any], step: str | None, message: str
) -> None:
    fake = FakeClient(run(phase, **spec))
    with pytest.raises(KubehatchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _reruns.retry(fake, "r1", from_step=step)
    assert fake.patches == []


def test_a_replay_is_a_new_run_with_the_same_input_and_priority() -> None:
    fake = FakeClient(run("Failed"))
    assert _reruns.replay(fake, "r1") == "r1-again"
    (body,) = fake.created
    assert body["spec"]["input"] == {"a": 1} and body["spec"]["priority"] == 2
    assert body["metadata"]["labels"]["kubehatch.dev/replay-of"] == "r1"
    assert body["spec"]["triggeredBy"] == {"type": "Manual", "source": "replay of r1"}


def test_suspend_and_resume_set_the_spec_and_refuse_a_finished_run() -> None:
    fake = FakeClient(run("Running"))
    _pausing.suspend(fake, "r1")
    _pausing.resume(fake, "r1")
    assert fake.patches == [{"spec": {"suspend": True}}, {"spec": {"suspend": False}}]
    with pytest.raises(KubehatchError, match="has finished"):
        _pausing.suspend(FakeClient(run("Succeeded")), "r1")
