"""The operator checks a run's input against the Workflow's spec.inputSchema when it starts."""

from __future__ import annotations

from typing import Any

from kubehatch.api.workflow import WorkflowSpec
from kubehatch.api.workflowrun import WorkflowRunPhase
from kubehatch_operator.decisions import decide
from kubehatch_operator.store import Store
from tests.unit.operator.fakekube import FakeKube
from tests.unit.operator.test_decisions import T0, new_run, step
from tests.unit.operator.test_large_inputs import BIG, reconcile, run_body, workflow

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "user": {"type": "string"},
        "address": {
            "type": "object",
            "properties": {"zip": {"type": "integer"}},
            "required": ["zip"],
        },
    },
    "required": ["user"],
}


def typed(**extra: object) -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {"image": "img:1", "service": "svc", "steps": [step("a")], "inputSchema": SCHEMA, **extra}
    )


def test_an_input_that_fits_starts_the_run() -> None:
    decision = decide(new_run(input={"user": "ada", "address": {"zip": 1}}), typed(), [], T0)
    assert decision.status.phase is WorkflowRunPhase.RUNNING
    assert decision.start  # its first step; the small input travels in its environment
    assert decision.status.workflow_spec is not None
    assert decision.status.workflow_spec.input_schema == SCHEMA


def test_an_input_that_does_not_fit_fails_the_run_naming_the_fields() -> None:
    run = new_run(input={"address": {"zip": "x"}})
    decision = decide(run, typed(), [], T0)
    status = decision.status
    assert status.phase is WorkflowRunPhase.FAILED
    assert status.workflow_spec is None and not decision.create_input and not decision.start
    condition = next(c for c in status.conditions if c.type == "Succeeded")
    assert condition.reason == "InvalidInput"
    assert "address.zip: 'x' is not of type 'integer'" in condition.message
    assert "user: field required" in condition.message
    assert status.finished_at == T0


def test_a_workflow_without_a_schema_takes_any_input() -> None:
    spec = WorkflowSpec.model_validate({"image": "i", "service": "s", "steps": [step("a")]})
    assert decide(new_run(input={"x": [1]}), spec, [], T0).status.phase is WorkflowRunPhase.RUNNING


def test_a_large_input_is_read_back_and_checked_whole() -> None:
    spec = workflow()
    spec["spec"]["inputSchema"] = {
        "type": "object",
        "properties": {"user": {"type": "integer"}},
        "required": ["user"],
    }
    kube, store = FakeKube(), Store()
    store.observe_workflow(spec)
    store.observe_run(kube.add_run(run_body("big", BIG)))  # BIG has user "ada"
    reconcile(kube, store, "big")
    status = kube.runs["big"]["status"]
    assert status["phase"] == "Failed"
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "InvalidInput"
    assert "user: 'ada' is not of type 'integer'" in condition["message"]
    assert not kube.configmaps  # nothing stored for a run that never starts
