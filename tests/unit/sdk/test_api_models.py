"""The API models: defaults, wire form, and every cross-field validation error."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from kubehatch.api import (
    API_VERSION,
    Backoff,
    ConcurrencySpec,
    Condition,
    ConditionStatus,
    LimitStrategy,
    SpecProblems,
    StepPhase,
    Triggers,
    TriggerType,
    Workflow,
    WorkflowEvent,
    WorkflowRun,
    WorkflowRunPhase,
    WorkflowRunSpec,
    WorkflowRunStatus,
    WorkflowSpec,
    find_condition,
    set_condition,
)


def spec(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"service": "svc", "image": "img:1", "steps": list(steps), **extra}


def step(name: str, *parents: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "action": name, "parents": list(parents), **extra}


def problems_of(data: dict[str, Any]) -> list[str]:
    """The cross-field problems, as 'path: message' strings."""
    with pytest.raises(ValidationError) as caught:
        WorkflowSpec.model_validate(data)
    (error,) = caught.value.errors()
    cause = error["ctx"]["error"]
    assert isinstance(cause, SpecProblems)
    return [str(problem) for problem in cause.problems]


def test_workflow_spec_defaults_and_wire_form() -> None:
    parsed = WorkflowSpec.model_validate(spec(step("a"), step("b", "a", timeout="30s")))
    assert parsed.suspend is False
    assert parsed.triggers == Triggers()
    wire = parsed.to_dict()
    assert wire["steps"][1] == {
        "name": "b",
        "action": "b",
        "parents": ["a"],
        "timeout": "30s",
        "retries": 0,
        "env": [],
        "rateLimits": [],
    }
    assert "concurrency" not in wire  # None values are left out
    assert WorkflowSpec.model_validate(wire) == parsed


def test_snake_case_names_work_in_python() -> None:
    parsed = WorkflowSpec(
        service_account_name="runner", steps=[step("a")], service="svc", image="i"
    )
    assert parsed.to_dict()["serviceAccountName"] == "runner"


def test_unknown_fields_are_rejected_so_typos_show() -> None:
    with pytest.raises(ValidationError, match="maxRun"):
        ConcurrencySpec.model_validate({"expression": "input.a", "maxRun": 2})
    with pytest.raises(ValidationError, match="on"):
        WorkflowSpec.model_validate(spec(step("a"), on={"events": ["x"]}))


def test_steps_must_not_be_empty() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        WorkflowSpec.model_validate(spec())


def test_duplicate_step_names() -> None:
    assert problems_of(spec(step("a"), step("a"))) == [
        "steps[1].name: step name 'a' is already used by steps[0]; give every step its own name"
    ]


def test_unknown_parent_lists_the_steps() -> None:
    assert problems_of(spec(step("a"), step("b", "c"))) == [
        "steps[1].parents[0]: parent 'c' is not a step of this workflow (steps: 'a', 'b'); "
        "fix the name or add that step"
    ]


def test_cycles_are_rejected_though_the_api_server_cannot_see_them() -> None:
    (problem,) = problems_of(spec(step("a", "b"), step("b", "a")))
    assert problem.startswith("steps[0].parents: steps wait for each other in a cycle ('a' -> 'b'")


def test_bare_action_needs_a_service() -> None:
    data = {"image": "i", "steps": [step("a"), {"name": "b", "action": "other:b"}]}
    assert problems_of(data) == [
        "steps[0].action: action 'a' has no service; write 'service:a' or set spec.service"
    ]


def test_every_step_needs_an_image() -> None:
    data = {"service": "s", "steps": [step("a", image="x"), step("b")]}
    assert problems_of(data) == [
        "steps[1].image: no image for this step; set spec.image or the step's image"
    ]


def test_all_problems_are_reported_together() -> None:
    assert len(problems_of({"steps": [step("a", "a"), step("a")]})) == 6  # 1+1+2+2


def test_field_errors_name_the_path() -> None:
    with pytest.raises(ValidationError) as caught:
        WorkflowSpec.model_validate(spec(step("a", timeout="soon", retries=-1)))
    locations = {tuple(error["loc"]) for error in caught.value.errors()}
    assert locations == {("steps", 0, "timeout"), ("steps", 0, "retries")}


def test_helpers_for_the_operator() -> None:
    parsed = WorkflowSpec.model_validate(
        spec(step("a"), {"name": "b", "action": "x:y", "image": "own"})
    )
    a, b = parsed.steps
    assert parsed.get_step("b") is b
    assert parsed.qualified_action(a) == "svc:a"
    assert parsed.qualified_action(b) == "x:y"
    assert parsed.step_image(a) == "img:1"
    assert parsed.step_image(b) == "own"
    with pytest.raises(KeyError, match="no step 'z' \\(steps: a, b\\)"):
        parsed.get_step("z")


def test_concurrency_needs_exactly_one_key_source() -> None:
    for data in ({}, {"expression": "input.a", "action": "svc:key"}):
        with pytest.raises(ValidationError, match="set exactly one of expression"):
            ConcurrencySpec.model_validate(data)
    limit = ConcurrencySpec.model_validate({"action": "svc:key"})
    assert (limit.max_runs, limit.limit_strategy) == (1, LimitStrategy.CANCEL_IN_PROGRESS)


def test_concurrency_max_runs_at_least_one() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ConcurrencySpec.model_validate({"expression": "input.a", "maxRuns": 0})


def test_limit_strategy_wire_values() -> None:
    assert [s.value for s in LimitStrategy] == [
        "CancelInProgress",
        "CancelNewest",
        "QueueNewest",
        "GroupRoundRobin",
        "CancelQueuedExceptNewest",
        "CancelQueuedExceptOldest",
    ]


def test_triggers_need_timezones_and_valid_crons() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Triggers.model_validate({"at": ["2030-01-01T00:00:00"]})
    with pytest.raises(ValidationError, match="not a cron schedule"):
        Triggers.model_validate({"crons": ["every day"]})
    parsed = Triggers.model_validate({"at": ["2030-01-01T00:00:00Z"]})
    assert parsed.at == [datetime(2030, 1, 1, tzinfo=UTC)]


def test_backoff_delays_grow_up_to_the_maximum() -> None:
    backoff = Backoff(initial="10s", multiplier=3, max="1m")
    assert [backoff.delay(n) for n in (1, 2, 3)] == [
        timedelta(seconds=10),
        timedelta(seconds=30),
        timedelta(minutes=1),
    ]
    assert Backoff().to_dict() == {"initial": "10s", "multiplier": 2, "max": "5m"}
    with pytest.raises(ValidationError):
        Backoff(multiplier=0)


def test_resource_requirements_and_env_on_steps() -> None:
    parsed = WorkflowSpec.model_validate(
        spec(
            step(
                "a",
                resources={"requests": {"cpu": 1}, "limits": {"memory": "1Gi"}},
                env=[{"name": "MODE", "value": "fast"}],
            )
        )
    )
    wire = parsed.to_dict()["steps"][0]
    assert wire["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    assert wire["env"] == [{"name": "MODE", "value": "fast"}]


def test_resource_new_and_manifest() -> None:
    workflow = Workflow.new("wf", spec(step("a")), namespace="ns", labels={"a": "b"})
    manifest = workflow.to_manifest()
    assert manifest["apiVersion"] == API_VERSION
    assert manifest["kind"] == "Workflow"
    assert manifest["metadata"] == {"name": "wf", "namespace": "ns", "labels": {"a": "b"}}
    assert (workflow.name, workflow.namespace) == ("wf", "ns")
    assert Workflow.model_validate(manifest) == workflow


def test_resource_rejects_other_kinds_and_versions() -> None:
    manifest = Workflow.new("wf", spec(step("a"))).to_manifest()
    with pytest.raises(ValidationError, match="kind 'WorkflowRun' is not 'Workflow'"):
        Workflow.model_validate({**manifest, "kind": "WorkflowRun"})
    with pytest.raises(ValidationError, match="apiVersion 'v1' is not supported"):
        Workflow.model_validate({**manifest, "apiVersion": "v1"})


def test_workflow_run_spec_defaults_to_manual() -> None:
    run = WorkflowRun.new("r", {"workflowRef": {"name": "wf"}})
    assert run.spec.triggered_by.type is TriggerType.MANUAL
    assert run.spec.cancel is False
    assert run.to_manifest()["spec"]["workflowRef"] == {"name": "wf"}
    assert WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}, "input": {"a": [1]}})


def test_workflow_run_status_steps_are_a_map() -> None:
    status = WorkflowRunStatus.model_validate(
        {
            "phase": "Running",
            "progress": "1/2",
            "steps": {"a": {"phase": "Succeeded", "attempts": 1}},
            "workflowSpec": spec(step("a")),
            "futureField": "ignored",
        }
    )
    assert status.steps["a"].phase is StepPhase.SUCCEEDED
    assert status.workflow_spec is not None
    with pytest.raises(ValidationError):
        WorkflowRunStatus.model_validate({"progress": "half"})


def test_phases_know_when_they_are_final() -> None:
    assert {p for p in WorkflowRunPhase if p.finished} == {
        WorkflowRunPhase.SUCCEEDED,
        WorkflowRunPhase.FAILED,
        WorkflowRunPhase.CANCELLED,
        WorkflowRunPhase.TIMED_OUT,
    }
    assert {p for p in StepPhase if not p.finished} == {
        StepPhase.PENDING,
        StepPhase.RUNNING,
        StepPhase.RETRYING,
    }


def test_workflow_event() -> None:
    event = WorkflowEvent.new("e1", {"key": "user:created", "payload": {"id": 1}})
    assert event.to_manifest()["spec"] == {
        "key": "user:created",
        "payload": {"id": 1},
        "additionalMetadata": {},
    }
    with pytest.raises(ValidationError, match="is not a valid event key"):
        WorkflowEvent.new("e2", {"key": "has space"})


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    ready = Condition(
        type="Ready", status=ConditionStatus.TRUE, reason="Valid", last_transition_time=t0
    )
    again = Condition(type="Ready", status=ConditionStatus.TRUE, reason="StillValid")
    conditions = set_condition([ready], again)
    assert conditions[0].last_transition_time == t0
    assert conditions[0].reason == "StillValid"
    flipped = set_condition(conditions, Condition(type="Ready", status="False", reason="Broken"))
    assert flipped[0].last_transition_time != t0
    other = set_condition(flipped, Condition(type="Stalled", status="True", reason="X"))
    assert [c.type for c in other] == ["Ready", "Stalled"]
    assert find_condition(other, "Stalled") is other[1]
    assert find_condition(other, "Missing") is None


def test_condition_reason_must_be_camel_case() -> None:
    with pytest.raises(ValidationError):
        Condition(type="Ready", status="True", reason="not valid!")


def test_a_total_needs_a_strategy_that_queues() -> None:
    from kubehatch.api.workflow import ConcurrencySpec

    with pytest.raises(ValidationError, match="maxRunsTotal cannot be used with limitStrategy"):
        ConcurrencySpec.model_validate({"expression": "input.k", "maxRunsTotal": 2})
    spec = ConcurrencySpec.model_validate(
        {"expression": "input.k", "maxRunsTotal": 2, "limitStrategy": "GroupRoundRobin"}
    )
    assert not spec.per_key and spec.max_runs == 1


def test_priorities_are_one_to_three() -> None:
    from kubehatch.api.workflowrun import WorkflowRunSpec

    with pytest.raises(ValidationError, match="less than or equal to 3"):
        WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}, "priority": 4})
    assert (
        WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}, "priority": 3}).priority == 3
    )
