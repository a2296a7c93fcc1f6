"""forEach steps: one Job per item, a parallelism cap, per-item retries, the gathered
output; decided without a cluster."""

from __future__ import annotations

import json
from datetime import timedelta

from kubehatch.api import wire
from kubehatch.api.workflowrun import StepPhase, WorkflowRunPhase
from kubehatch_operator.decisions import decide
from kubehatch_operator.model import Attempt, AttemptState, Decision, Run
from tests.unit.operator.test_decisions import T0, after, started, step, workflow

OK, FAILED, ACTIVE = AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.ACTIVE
FAN = workflow(step("fan", forEach="input.files", parallelism=5, retries=1), step("sum", "fan"))


def item(index: int, attempt: int, state: AttemptState, **kw: object) -> Attempt:
    job = wire.item_job_name("r1", "", "fan", index, attempt)
    return Attempt("fan", attempt, job, state, item=index, **kw)


def launched(decision: Decision) -> list[tuple[int | None, int, str | None]]:
    return [(s.item, s.attempt, s.item_value) for s in decision.start]


def files(n: int) -> dict[str, object]:
    return {"files": [f"f{i}" for i in range(n)]}


def test_items_start_up_to_the_parallelism_and_more_as_they_finish() -> None:
    run, first = started(FAN, input=files(12))
    assert launched(first) == [(i, 1, json.dumps(f"f{i}")) for i in range(5)]
    assert len({s.job_name for s in first.start}) == 5
    fan = run.status.steps["fan"]
    assert fan.phase is StepPhase.RUNNING and fan.items is not None
    assert (fan.items.total, fan.items.running) == (12, 5)
    attempts = [item(0, 1, OK), item(1, 1, OK), *(item(i, 1, ACTIVE) for i in range(2, 5))]
    second = decide(run, FAN, attempts, T0)
    assert launched(second) == [(5, 1, '"f5"'), (6, 1, '"f6"')]
    items = second.status.steps["fan"].items
    assert items is not None and (items.succeeded, items.running) == (2, 5)


def test_a_failed_item_is_retried_on_its_own() -> None:
    run, _ = started(FAN, input=files(2))
    failed = [item(0, 1, FAILED, message="boom", finished_at=T0), item(1, 1, ACTIVE)]
    waiting = decide(run, FAN, failed, T0)
    assert waiting.start == [] and waiting.wake_at is not None
    assert waiting.wake_at <= T0 + timedelta(seconds=10)
    assert waiting.status.steps["fan"].phase is StepPhase.RUNNING
    retry = decide(after(run, waiting), FAN, failed, T0 + timedelta(seconds=10))
    assert launched(retry) == [(0, 2, '"f0"')]


def test_an_item_that_fails_after_its_retries_fails_the_step_and_stops_the_others() -> None:
    run, _ = started(FAN, input=files(3))
    attempts = [
        item(0, 1, FAILED, message="boom"),
        item(0, 2, FAILED, message="boom again"),
        item(1, 1, OK),
        item(2, 1, ACTIVE),
    ]
    decision = decide(run, FAN, attempts, T0)
    fan = decision.status.steps["fan"]
    assert fan.phase is StepPhase.FAILED
    assert fan.message == "item 0 failed: boom again after 2 attempts (1 of 3 items succeeded)"
    assert decision.stop_jobs == [wire.item_job_name("r1", "", "fan", 2, 1)]
    assert decision.status.steps["sum"].phase is StepPhase.SKIPPED
    assert decision.status.phase is WorkflowRunPhase.FAILED


def test_with_continue_on_item_failure_the_others_go_on_and_the_output_has_a_gap() -> None:
    spec = workflow(step("fan", forEach="[1, 2, 3]", continueOnItemFailure=True))
    run, first = started(spec)
    assert [s.item for s in first.start] == [0, 1, 2]
    attempts = [item(0, 1, OK), item(1, 1, FAILED, message="x"), item(2, 1, OK)]
    done = decide(run, spec, attempts, T0)
    fan = done.status.steps["fan"]
    assert fan.phase is StepPhase.RUNNING and fan.message == "gathering the outputs of 3 items"
    assert done.wake_at == T0  # the next pass reads the outputs
    run = after(run, done)
    end = decide(run, spec, attempts, T0, gathered={"fan": [{"v": 1}, None, {"v": 3}]})
    fan = end.status.steps["fan"]
    assert fan.phase is StepPhase.SUCCEEDED
    assert fan.message == "2 items succeeded; 1 of 3 items failed"
    (output,) = end.outputs
    assert output.configmap == fan.output_config_map
    assert json.loads(output.text) == [{"v": 1}, None, {"v": 3}]
    assert end.status.phase is WorkflowRunPhase.SUCCEEDED


def test_the_gathered_output_is_the_childs_parent_output() -> None:
    run, _ = started(FAN, input=files(1))
    run = after(run, decide(run, FAN, [item(0, 1, OK)], T0))
    decision = decide(run, FAN, [item(0, 1, OK)], T0, gathered={"fan": [7]})
    (start,) = decision.start
    assert start.step.name == "sum"
    assert start.parents == {"fan": wire.gathered_output_name("r1", "", "fan")}


def test_an_empty_list_succeeds_at_once_with_an_empty_output() -> None:
    run, first = started(FAN, input=files(0))
    fan = run.status.steps["fan"]
    assert fan.phase is StepPhase.SUCCEEDED and fan.message == "forEach gave no items"
    assert [o.text for o in first.outputs] == ["[]"]
    assert [s.step.name for s in first.start] == ["sum"]


def test_a_for_each_that_gives_no_list_fails_the_step() -> None:
    run, _ = started(FAN, input={"files": "one"})
    fan = run.status.steps["fan"]
    assert fan.phase is StepPhase.FAILED
    assert fan.message == "forEach 'input.files' gave 'one', not a list"


def test_a_list_from_a_parent_waits_for_its_output() -> None:
    spec = workflow(step("list"), step("fan", "list", forEach="parents.list.ids"))
    run, _ = started(spec)
    done = [Attempt("list", 1, wire.job_name("r1", "", "list", 1), OK)]
    waiting = decide(run, spec, done, T0)
    assert waiting.start == [] and waiting.wake_at == T0
    run = after(run, waiting)
    decision = decide(run, spec, done, T0, outputs={"list": {"ids": [10, 20]}})
    assert launched(decision) == [(0, 1, "10"), (1, 1, "20")]


def test_a_thousand_items_keep_the_run_small_and_lost_jobs_are_made_again() -> None:
    spec = workflow(step("fan", forEach="input.files", parallelism=1000))
    run, first = started(spec, input=files(1000))
    assert len(first.start) == 1000
    status = json.dumps(run.status.to_dict()["steps"])
    assert len(status) < 1000, status
    # The Jobs were never made (a crash): the next pass asks for the same Jobs again.
    again = decide(run, spec, [], T0)
    assert [s.job_name for s in again.start] == [s.job_name for s in first.start]


def test_items_of_a_retried_run_get_new_attempt_numbers() -> None:
    run, _ = started(FAN, input=files(1))
    fan = run.status.steps["fan"].model_copy(update={"earlier_attempts": 2, "attempts": 2})
    status = run.status.model_copy(update={"steps": {**run.status.steps, "fan": fan}})
    retried = Run(run.name, run.generation, run.spec, status)
    decision = decide(retried, FAN, [item(0, 1, FAILED), item(0, 2, FAILED)], T0)
    assert launched(decision) == [(0, 3, '"f0"')]


def test_an_item_whose_pod_never_starts_is_retried_and_its_job_kept_until_then() -> None:
    run, _ = started(FAN, input=files(1))
    stuck = item(0, 1, ACTIVE, started_at=T0)
    later = T0 + timedelta(minutes=10, seconds=1)  # past the default start timeout (10m)
    first = decide(run, FAN, [stuck], later)
    # The item's Job is its only record: it stays until the next attempt exists.
    assert first.stop_jobs == [] and first.start == []
    retry = decide(after(run, first), FAN, [stuck], later + timedelta(seconds=10))
    assert launched(retry) == [(0, 2, '"f0"')]
    assert retry.stop_jobs == [stuck.job_name]  # now it goes


def test_items_of_an_earlier_round_are_not_gathered() -> None:
    from kubehatch_operator.fanout import succeeded_items

    attempts = [item(0, 1, OK), item(0, 3, OK), item(1, 1, OK)]
    assert succeeded_items("fan", attempts, earlier=2) == {0: attempts[1].job_name}
    assert succeeded_items("fan", attempts) == {
        0: attempts[1].job_name,
        1: attempts[2].job_name,
    }


def test_an_item_output_that_cannot_be_read_fails_the_step_instead_of_waiting() -> None:
    from kubehatch_operator.conditions import Unreadable

    run, _ = started(FAN, input=files(2))
    done = [item(0, 1, OK), item(1, 1, OK)]
    run = after(run, decide(run, FAN, done, T0))
    gathered = {"fan": [{"a": 1}, Unreadable("2 MiB, more than the operator reads")]}
    fan = decide(run, FAN, done, T0, gathered=gathered).status.steps["fan"]
    assert fan.phase is StepPhase.FAILED
    assert fan.message is not None and fan.message.startswith(
        "the output of item 1 cannot be gathered: 2 MiB"
    )


def test_a_list_that_changes_under_a_running_step_fails_it() -> None:
    run, _ = started(FAN, input=files(3))
    edited = Run(run.name, 2, run.spec.model_copy(update={"input": files(2)}), run.status)
    fan = decide(edited, FAN, [item(0, 1, ACTIVE)], T0).status.steps["fan"]
    assert fan.phase is StepPhase.FAILED
    assert fan.message == "forEach 'input.files' now gives 2 items, not 3"


def test_a_retried_forEach_step_writes_its_output_under_a_new_name() -> None:
    assert wire.gathered_output_name("r1", "u", "fan") != wire.gathered_output_name(
        "r1", "u", "fan", 2
    )
    assert wire.child_run_name("r1", "u", "s", "0") != wire.child_run_name("r1", "u", "s", "0", 2)
