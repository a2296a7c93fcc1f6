"""Steps that wait without a pod (sleep, until, an event, an approval), and the event log
that wakes them; decided without a cluster."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from kubehatch.api.workflowrun import StepPhase, WorkflowRunPhase
from kubehatch_operator.decisions import decide
from kubehatch_operator.event_log import EventLog
from kubehatch_operator.model import Run
from kubehatch_operator.waits import Approval, SeenEvent, Waited
from tests.unit.operator.test_decisions import T0, after, started, step, workflow


def wait_step(name: str, *parents: str, **wait: object) -> dict:
    return {"name": name, "parents": list(parents), "wait": wait}


def test_a_sleep_starts_no_pod_and_ends_on_time_even_after_a_restart() -> None:
    spec = workflow(wait_step("nap", sleep="1h"), step("after", "nap"))
    run, first = started(spec)
    assert first.start == [] and run.status.steps["nap"].phase is StepPhase.RUNNING
    assert run.status.steps["nap"].message == "sleeping 1h"
    waiting = decide(run, spec, [], T0 + timedelta(minutes=1))
    assert waiting.wake_at == T0 + timedelta(hours=1) and waiting.start == []
    # A new operator knows nothing but the status: the same time comes out of it.
    done = decide(after(run, waiting), spec, [], T0 + timedelta(hours=1))
    nap = done.status.steps["nap"]
    assert nap.phase is StepPhase.SUCCEEDED
    (output,) = done.outputs
    assert json.loads(output.text) == {"sleptUntil": "2026-01-01T13:00:00Z"}
    assert [(s.step.name, s.parents) for s in done.start] == [("after", {"nap": output.configmap})]


def test_until_waits_for_the_time_the_input_gives() -> None:
    spec = workflow(wait_step("later", until="input.at"))
    run, _ = started(spec, input={"at": "2026-01-01T12:30:00Z"})
    waiting = decide(run, spec, [], T0)
    assert waiting.wake_at == T0 + timedelta(minutes=30)
    assert waiting.status.steps["later"].message == "waiting until 2026-01-01T12:30:00Z"
    bad, _ = started(spec, input={"at": "soon"})
    failed = decide(bad, spec, [], T0).status.steps["later"]
    assert failed.phase is StepPhase.FAILED
    assert failed.message == "wait.until 'input.at' gave 'soon', not an RFC 3339 time"


def event(name: str, key: str, minutes: float, **data: object) -> SeenEvent:
    return SeenEvent(name, key, dict(data), {"source": "test"}, T0 + timedelta(minutes=minutes))


PAID = workflow(
    wait_step(
        "paid",
        event={"key": "order:*", "filter": "event.data.id == input.id", "lookback": "5m"},
        timeout="1h",
    ),
    step("ship", "paid"),
)


def test_the_first_matching_event_is_the_steps_output() -> None:
    run, _ = started(PAID, input={"id": 7})
    events = [
        event("too-old", "order:paid", -6, id=7),  # before the lookback
        event("other-order", "order:paid", 1, id=8),  # the filter says no
        event("no-id", "order:paid", 1),  # the filter fails: not the one
        event("it", "order:paid", 2, id=7),
        event("later", "order:paid", 3, id=7),
    ]
    decision = decide(run, PAID, [], T0 + timedelta(minutes=4), waited={"paid": Waited(events)})
    assert decision.status.steps["paid"].phase is StepPhase.SUCCEEDED
    (output,) = decision.outputs
    assert json.loads(output.text) == {
        "key": "order:paid",
        "data": {"id": 7},
        "metadata": {"source": "test"},
        "event": "it",
    }
    early = [event("early", "order:paid", -4, id=7)]  # inside the lookback
    assert decide(run, PAID, [], T0, waited={"paid": Waited(early)}).outputs


def test_a_wait_that_times_out_fails_or_takes_the_default_branch() -> None:
    run, _ = started(PAID, input={"id": 7})
    late = T0 + timedelta(hours=1)
    waiting = decide(run, PAID, [], T0 + timedelta(minutes=1))
    assert waiting.wake_at == late
    timed_out = decide(run, PAID, [], late).status
    assert timed_out.steps["paid"].phase is StepPhase.TIMED_OUT
    assert timed_out.steps["paid"].message == (
        "waiting for an event 'order:*': nothing came within its timeout of 1h"
    )
    assert timed_out.phase is WorkflowRunPhase.FAILED
    go_on = workflow(wait_step("paid", event={"key": "x"}, timeout="1h", onTimeout="Continue"))
    run2, _ = started(go_on)
    decision = decide(run2, go_on, [], late)
    assert decision.status.phase is WorkflowRunPhase.SUCCEEDED
    assert json.loads(decision.outputs[0].text) == {"timedOut": True}


def test_an_approval_approves_or_rejects_with_who_and_why() -> None:
    spec = workflow(wait_step("ok", approval={"message": "deploy?"}), step("deploy", "ok"))
    run, _ = started(spec)
    assert decide(run, spec, [], T0).status.steps["ok"].phase is StepPhase.RUNNING
    yes = Approval("a1", True, "alice", T0 + timedelta(minutes=1), "looks good")
    no = Approval("a2", False, "bob", T0 + timedelta(minutes=2), "not on a Friday")
    approved = decide(run, spec, [], T0, waited={"ok": Waited(approvals=[yes])})
    assert json.loads(approved.outputs[0].text) == {
        "approved": True,
        "approver": "alice",
        "comment": "looks good",
        "at": "2026-01-01T12:01:00Z",
    }
    rejected = decide(run, spec, [], T0, waited={"ok": Waited(approvals=[yes, no])})
    ok = rejected.status.steps["ok"]
    assert ok.phase is StepPhase.FAILED and ok.message == "rejected by bob: not on a Friday"
    assert rejected.status.steps["deploy"].phase is StepPhase.SKIPPED


def test_a_cancelled_run_stops_its_waits() -> None:
    spec = workflow(wait_step("nap", sleep="1h"))
    run, _ = started(spec)
    cancel = run.spec.model_copy(update={"cancel": True})
    decision = decide(Run(run.name, 2, cancel, run.status), spec, [], T0)
    assert decision.status.steps["nap"].phase is StepPhase.CANCELLED
    assert decision.status.phase is WorkflowRunPhase.CANCELLED


def body(name: str, key: str, seconds: int = 0) -> dict:
    at = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return {
        "metadata": {"namespace": "ns", "name": name, "creationTimestamp": at},
        "spec": {"key": key, "payload": {"n": seconds}},
    }


def test_an_event_wakes_only_the_runs_waiting_for_its_key() -> None:
    log = EventLog()
    for i in range(1000):  # many runs wait for other keys: none is looked at
        log.wait(("ns", f"other-{i}"), {f"order:{i}"})
    log.wait(("ns", "exact"), {"user:created"})
    log.wait(("ns", "wild"), {"user:*"})
    log.wait(("other-ns", "elsewhere"), {"user:created"})
    assert log.observe(body("e1", "user:created")) == {("ns", "exact"), ("ns", "wild")}
    assert log.observe(body("e1", "user:created")) == set()  # once
    log.wait(("ns", "exact"), set())
    assert log.observe(body("e2", "user:created", 5)) == {("ns", "wild")}
    assert [e.name for e in log.matching("ns", "user:*", T0 + timedelta(seconds=1))] == ["e2"]


def test_the_event_log_keeps_a_day_and_a_bounded_number() -> None:
    log = EventLog(limit=3)
    for i in range(5):
        log.observe(body(f"e{i}", "k", i))
    assert [e.name for e in log.matching("ns", "k", T0)] == ["e2", "e3", "e4"]
    log.observe(body("tomorrow", "k", 25 * 3600))
    assert [e.name for e in log.matching("ns", "k", T0)] == ["tomorrow"]


def test_a_wait_step_needs_no_action_and_no_image() -> None:
    spec = workflow(wait_step("nap", sleep="1s"))
    assert spec.steps[0].action is None
    with pytest.raises(ValueError, match="set exactly one of action"):
        workflow({"name": "both", "action": "x", "wait": {"sleep": "1s"}})
