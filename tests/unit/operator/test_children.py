"""Child runs (ctx.spawn): the spawning step's states and actions, decided without a cluster."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from kubehatch.api import spawns, wire
from kubehatch.api.workflow import WorkflowSpec
from kubehatch.api.workflowrun import StepPhase, WorkflowRunPhase, WorkflowRunSpec
from kubehatch_operator import children
from kubehatch_operator.decisions import decide
from kubehatch_operator.model import (
    Attempt,
    AttemptState,
    ChildPhase,
    ChildRequest,
    ChildState,
    Decision,
    Run,
    Spawned,
    SpawnRequest,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)


def spec(spawns: list[str] | None = None) -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {
            "image": "img:1",
            "service": "svc",
            "spawns": ["child"] if spawns is None else spawns,
            "steps": [
                {"name": "fan", "action": "fan"},
                {"name": "sum", "action": "sum", "parents": ["fan"]},
            ],
        }
    )


def started(wf: WorkflowSpec, **run_spec: object) -> Run:
    run = Run(
        name="parent",
        uid="u-1",
        generation=1,
        spec=WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}, **run_spec}),
        status=decide(
            Run("parent", 1, WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}}),
                _empty(), uid="u-1"),
            wf, [], T0,
        ).status,
    )  # fmt: skip
    return run


def _empty():  # type: ignore[no-untyped-def]
    from kubehatch.api.workflowrun import WorkflowRunStatus

    return WorkflowRunStatus()


def request(n: int = 3, workflow: str = "child", single: bool = False) -> SpawnRequest:
    return SpawnRequest(tuple(ChildRequest(workflow, {"i": i}) for i in range(n)), single)


FAN_JOB = wire.job_name("parent", "u-1", "fan", 1)


def fan(req: SpawnRequest | None, *states: ChildState, problem: str | None = None) -> Attempt:
    """fan's first attempt, succeeded, its output a spawn request with these children."""
    return Attempt(
        "fan", 1, FAN_JOB, AttemptState.SUCCEEDED, T0, T0,
        spawn=Spawned(req, problem, tuple(states)),
    )  # fmt: skip


def names(run: Run, req: SpawnRequest) -> list[str]:
    return children.child_names(run, "fan", req)


def state(name: str, phase: ChildPhase, **kw: object) -> ChildState:
    return ChildState(name, phase, **kw)  # type: ignore[arg-type]


def after(run: Run, decision: Decision) -> Run:
    return dataclasses.replace(run, status=decision.status)


# --- the request ------------------------------------------------------------------------------
def test_outputs_that_are_no_spawn_request_are_none() -> None:
    for output in (None, 1, [], {"value": 1}, {"kubehatch.dev/spawnx": {}}):
        assert children.parse_request(output) is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ([], "must be an object with a list 'runs'"),
        ({"runs": [{"input": {}}]}, "runs[0] names no workflow"),
        ({"runs": [{"workflow": "c", "input": [1]}]}, "runs[0].input must be a JSON object"),
        ({"runs": [{"workflow": "c", "key": "A"}]}, "runs[0].key 'A' is not a valid"),
        ({"runs": [{"workflow": "c", "key": "7"}]}, "not a valid"),
        ({"runs": [{"workflow": "c", "key": "a"}, {"workflow": "c", "key": "a"}]}, "runs[1].key"),
        ({"runs": [{"workflow": "c"}] * 2, "single": True}, "a single spawn asks for 2 runs"),
        ({"runs": [{"workflow": "c"}] * 1001}, "at most 1000"),
    ],
)
def test_malformed_requests_say_why(body: object, why: str) -> None:
    parsed = children.parse_request({wire.SPAWN_KEY: body})
    assert isinstance(parsed, str) and why in parsed


def test_the_sdk_envelope_parses() -> None:
    from kubehatch import Context

    output = Context().spawn_many("child", [{"i": 0}, {"i": 1}], keys=["a", None])
    parsed = children.parse_request(json.loads(json.dumps(output)))
    assert parsed == SpawnRequest(
        (ChildRequest("child", {"i": 0}, "a"), ChildRequest("child", {"i": 1})), False
    )
    assert children.parse_request(Context().spawn("child")) == SpawnRequest(
        (ChildRequest("child", {}),), True
    )


def test_child_names_are_deterministic_distinct_and_dns_labels() -> None:
    run = started(spec())
    req = SpawnRequest((*request(12).runs, ChildRequest("child", {}, "k")))
    first, again = names(run, req), names(run, req)
    assert first == again and len(set(first)) == 13
    assert all(len(n) <= 63 and n.startswith("parent-fan-") for n in first)
    assert first[-1].startswith("parent-fan-k-")
    other = dataclasses.replace(run, uid="u-2")  # a run re-created under the same name
    assert not set(names(other, req)) & set(first)


# --- the step's states --------------------------------------------------------------------------
def test_none_created_creates_them_all_and_waits_without_a_pod() -> None:
    run, req = started(spec()), request(3)
    decision = decide(run, None, [fan(req)], T1)
    fan_status = decision.status.steps["fan"]
    assert fan_status.phase is StepPhase.RUNNING
    assert fan_status.message == "waiting for 3 child runs (0 finished)"
    assert fan_status.child_runs == 3
    assert [(c.name, c.index, c.request.input) for c in decision.create_children] == [
        (n, i, {"i": i}) for i, n in enumerate(names(run, req))
    ]
    assert children.to_create(decision) == decision.create_children
    assert not decision.start and not decision.outputs
    assert decision.status.phase is WorkflowRunPhase.RUNNING
    assert decision.wake_at == T1 + children.POLL  # a backstop: children's ends wake it


def test_some_running_waits_and_counts_the_finished() -> None:
    run, req = started(spec()), request(3)
    first = decide(run, None, [fan(req)], T1)
    n = names(run, req)
    attempt = fan(
        req,
        state(n[0], ChildPhase.SUCCEEDED, final="Succeeded"),
        state(n[1], ChildPhase.ACTIVE),
        state(n[2], ChildPhase.ACTIVE),
    )
    decision = decide(after(run, first), None, [attempt], T1)
    assert decision.status.steps["fan"].message == "waiting for 3 child runs (1 finished)"
    assert decision.status.steps["fan"].phase is StepPhase.RUNNING
    assert not decision.create_children and not decision.outputs
    assert children.to_cancel(decision.status, [attempt]) == []


@pytest.mark.parametrize("single", [False, True])
def test_all_succeeded_gives_their_results_in_order_to_the_next_step(single: bool) -> None:
    run, req = started(spec()), request(1 if single else 3, single=single)
    first = decide(run, None, [fan(req)], T1)
    done = [
        state(n, ChildPhase.SUCCEEDED, final="Succeeded", output={"value": i})
        for i, n in enumerate(names(run, req))
    ]
    decision = decide(after(run, first), None, [fan(req, *done)], T1)
    fan_status = decision.status.steps["fan"]
    configmap = children.results_configmap_name(FAN_JOB)
    assert (fan_status.phase, fan_status.output_config_map) == (StepPhase.SUCCEEDED, configmap)
    assert fan_status.message is None and fan_status.child_runs == len(done)
    [stored] = decision.outputs
    expected = {"value": 0} if single else [{"value": 0}, {"value": 1}, {"value": 2}]
    assert (stored.step, stored.configmap, json.loads(stored.text)) == ("fan", configmap, expected)
    assert children.outputs_to_keep(decision) == [stored]
    # The next step mounts the operator's ConfigMap as fan's output.
    [start] = decision.start
    assert (start.step.name, start.parents) == ("sum", {"fan": configmap})


def test_no_children_at_all_succeed_at_once_with_an_empty_list() -> None:
    run = started(spec())
    decision = decide(run, None, [fan(request(0))], T1)
    assert decision.status.steps["fan"].phase is StepPhase.SUCCEEDED
    assert json.loads(decision.outputs[0].text) == []


@pytest.mark.parametrize(("final", "verb"), [("Failed", "failed"), ("Cancelled", "cancelled"),
                                             ("TimedOut", "timed out")])  # fmt: skip
def test_a_failed_child_fails_the_step_for_good_and_its_siblings_are_cancelled(
    final: str, verb: str
) -> None:
    wf = spec()
    wf.steps[0].retries = 3  # a spawning step is not retried: it would spawn again
    run, req = started(wf), request(3)
    first = decide(run, None, [fan(req)], T1)
    n = names(run, req)
    attempt = fan(
        req,
        state(n[0], ChildPhase.SUCCEEDED, final="Succeeded"),
        state(n[1], ChildPhase.FAILED, final=final, message="step work failed: boom"),
        state(n[2], ChildPhase.ACTIVE),
    )
    decision = decide(after(run, first), None, [attempt], T1)
    fan_status = decision.status.steps["fan"]
    assert fan_status.phase is StepPhase.FAILED
    assert fan_status.message == f"child run {n[1]} {verb}: step work failed: boom"
    assert decision.status.steps["sum"].phase is StepPhase.SKIPPED
    assert decision.status.phase is WorkflowRunPhase.FAILED
    assert not decision.start and not decision.create_children
    assert children.to_cancel(decision.status, [attempt]) == [n[2]]


def test_a_workflow_not_in_spawns_fails_the_step_naming_it_the_list_and_the_fix() -> None:
    run = started(spec(["child", "other"]))
    decision = decide(run, None, [fan(request(2, workflow="evil"))], T1)
    message = decision.status.steps["fan"].message or ""
    assert decision.status.steps["fan"].phase is StepPhase.FAILED
    assert "may not spawn workflow 'evil'" in message
    assert "spec.spawns lists child, other" in message
    assert "add 'evil' to spec.spawns" in message and "WorkflowJob(spawns=" in message
    assert not decision.create_children


def test_an_invalid_request_fails_the_step() -> None:
    run = started(spec())
    decision = decide(run, None, [fan(None, problem="runs[0] names no workflow")], T1)
    assert decision.status.steps["fan"].message == (
        "its spawn request is invalid: runs[0] names no workflow"
    )


def test_redo_after_a_crash_creates_only_the_missing_under_the_same_names() -> None:
    """The creates went out, the status write was lost: the next pass sees some children."""
    run, req = started(spec()), request(3)
    n = names(run, req)
    attempt = fan(req, state(n[0], ChildPhase.ACTIVE), state(n[2], ChildPhase.ACTIVE))
    decision = decide(run, None, [attempt], T1)
    assert [c.name for c in decision.create_children] == [n[1]]
    again = decide(run, None, [attempt], T1)  # a second pass asks the same
    assert again.create_children == decision.create_children
    assert decision.status.steps["fan"].child_runs == 3


def test_a_child_deleted_before_it_finished_fails_the_step() -> None:
    run, req = started(spec()), request(2)
    first = decide(run, None, [fan(req)], T1)
    n = names(run, req)
    decision = decide(after(run, first), None, [fan(req, state(n[1], ChildPhase.ACTIVE))], T1)
    assert decision.status.steps["fan"].phase is StepPhase.FAILED
    assert decision.status.steps["fan"].message == (
        f"child run {n[0]} was deleted before it finished"
    )
    assert not decision.create_children


def test_a_run_of_the_childs_name_made_by_someone_else_fails_the_step() -> None:
    run, req = started(spec()), request(1)
    n = names(run, req)
    decision = decide(run, None, [fan(req, state(n[0], ChildPhase.FOREIGN))], T1)
    assert "exists that this run did not spawn" in (decision.status.steps["fan"].message or "")


def test_results_too_large_for_a_configmap_fail_the_step() -> None:
    run, req = started(spec()), request(2)
    big = "x" * (children.MAX_OUTPUT_BYTES // 2)
    done = [state(n, ChildPhase.SUCCEEDED, output=big) for n in names(run, req)]
    decision = decide(run, None, [fan(req, *done)], T1)
    assert decision.status.steps["fan"].phase is StepPhase.FAILED
    assert "more than a step's output may be" in (decision.status.steps["fan"].message or "")
    assert not decision.outputs


def test_cancelling_the_parent_cancels_its_running_children_and_creates_none() -> None:
    run, req = started(spec()), request(3)
    n = names(run, req)
    attempt = fan(req, state(n[0], ChildPhase.ACTIVE), state(n[1], ChildPhase.SUCCEEDED))
    cancelled = dataclasses.replace(run, spec=run.spec.model_copy(update={"cancel": True}))
    decision = decide(cancelled, None, [attempt], T1)
    assert [c.name for c in decision.create_children] == [n[2]]  # asked by the step...
    assert decision.status.phase is WorkflowRunPhase.CANCELLED
    assert decision.status.steps["fan"].phase is StepPhase.CANCELLED
    assert children.to_create(decision) == []  # n[2] was absent: not made now
    assert children.to_cancel(decision.status, [attempt]) == [n[0]]


def test_a_run_that_times_out_cancels_the_children_of_its_waiting_step() -> None:
    wf = spec().model_copy(update={"timeout": "10s"})
    run, req = started(wf), request(1)
    attempt = fan(req, state(names(run, req)[0], ChildPhase.ACTIVE))
    decision = decide(run, None, [attempt], T1)
    assert decision.status.phase is WorkflowRunPhase.TIMED_OUT
    assert children.to_cancel(decision.status, [attempt]) == names(run, req)


def test_a_step_without_a_spawn_request_succeeds_as_ever() -> None:
    run = started(spec())
    plain = Attempt("fan", 1, FAN_JOB, AttemptState.SUCCEEDED, T0, T0)
    decision = decide(run, None, [plain], T1)
    status = decision.status.steps["fan"]
    assert status.output_config_map == wire.output_configmap_name(FAN_JOB)
    assert status.child_runs is None and not decision.outputs


# --- a child's result ---------------------------------------------------------------------------
def test_a_childs_result_is_its_leaf_output_or_a_dict_of_its_leaves() -> None:
    one = WorkflowSpec.model_validate(
        {"image": "i", "service": "s", "steps": [
            {"name": "a", "action": "a"}, {"name": "b", "action": "b", "parents": ["a"]}]}
    )  # fmt: skip
    two = WorkflowSpec.model_validate(
        {"image": "i", "service": "s", "steps": [
            {"name": "a", "action": "a"}, {"name": "b", "action": "b", "parents": ["a"]},
            {"name": "c", "action": "c", "parents": ["a"]}]}
    )  # fmt: skip
    assert spawns.leaves(one) == ["b"]
    assert spawns.child_result(one, {"a": 1, "b": 2}) == 2
    assert spawns.child_result(two, {"a": 1, "b": 2, "c": 3}) == {"b": 2, "c": 3}
