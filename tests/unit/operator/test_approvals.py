"""The approval log: WorkflowApprovals as the watch delivers them, by run and step, what a
waiting step is given, which run an answer wakes, and how memory stays bounded."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.workflowrun import StepPhase
from kubehatch_operator.approvals import SKEW, ApprovalLog
from kubehatch_operator.decisions import decide
from kubehatch_operator.reading import _waited
from kubehatch_operator.store import Store
from tests.unit.operator.test_decisions import T0, after, started, step, workflow

NS = "team-a"


def approval(
    name: str,
    minutes: float,
    approved: bool = True,
    run: str = "r1",
    step: str = "ok",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "creationTimestamp": wire.format_time(T0 + timedelta(minutes=minutes)),
        },
        "spec": {
            "runRef": {"name": run},
            "step": step,
            "approved": approved,
            "approver": "alice",
            **spec,
        },
    }


def test_an_approval_is_kept_by_run_and_step_and_wakes_its_run() -> None:
    log = ApprovalLog()
    assert log.observe(approval("a1", 1, comment="fine")) == (NS, "r1")
    assert log.observe(approval("a1", 1, comment="fine")) is None  # the same again: no pass
    assert log.observe(approval("a2", 2, approved=False, step="other")) == (NS, "r1")
    (answer,) = log.for_step(NS, "r1", "ok")
    assert (answer.name, answer.approved, answer.approver, answer.comment) == (
        "a1",
        True,
        "alice",
        "fine",
    )
    assert answer.at == T0 + timedelta(minutes=1)
    assert [a.approved for a in log.for_step(NS, "r1", "other")] == [False]
    assert log.for_step(NS, "r2", "ok") == [] and log.for_step("elsewhere", "r1", "ok") == []


def test_approved_defaults_to_true_and_malformed_objects_are_ignored() -> None:
    log = ApprovalLog()
    body = approval("a1", 1)
    del body["spec"]["approved"]
    log.observe(body)
    assert log.for_step(NS, "r1", "ok")[0].approved is True
    assert log.observe({"metadata": {"name": "x", "namespace": NS}, "spec": {}}) is None
    no_time = approval("a2", 1)
    del no_time["metadata"]["creationTimestamp"]
    assert log.observe(no_time) is None
    assert len(log) == 1


def test_only_answers_given_since_the_wait_began_count() -> None:
    log = ApprovalLog()
    log.observe(approval("old", 0))  # before a retry, or for a run of the same name
    log.observe(approval("new", 11))
    since = T0 + timedelta(minutes=10)
    assert [a.name for a in log.for_step(NS, "r1", "ok", since=since)] == ["new"]
    # The API server's clock may lag the operator's a little.
    log.observe(approval("skewed", 10 - SKEW.total_seconds() / 120))
    assert [a.name for a in log.for_step(NS, "r1", "ok", since=since)] == ["skewed", "new"]


def test_a_deleted_approval_goes_and_wakes_its_run() -> None:
    log = ApprovalLog()
    log.observe(approval("a1", 1))
    assert log.observe(approval("a1", 1), deleted=True) == (NS, "r1")
    assert log.observe(approval("a1", 1), deleted=True) is None
    assert log.for_step(NS, "r1", "ok") == []


def test_memory_follows_the_unfinished_runs() -> None:
    log = ApprovalLog(per_step=3)
    runs = {(NS, "r1")}
    assert log.observe(approval("a1", 1, run="gone"), runs=runs) is None
    for i in range(5):
        log.observe(approval(f"a{i}", i), runs=runs)
    assert [a.name for a in log.for_step(NS, "r1", "ok")] == ["a2", "a3", "a4"]
    log.forget((NS, "r1"))
    assert len(log) == 0


def test_a_waiting_step_is_given_the_answers_to_it_and_decides_on_the_latest() -> None:
    spec = workflow(
        {"name": "ok", "parents": [], "wait": {"approval": {"message": "deploy?"}}},
        step("deploy", "ok"),
    )
    run, _ = started(spec)
    assert run.status.steps["ok"].phase is StepPhase.RUNNING
    store = Store()
    key = (NS, run.name)
    assert {name: w.approvals for name, w in _waited(store, key, run).items()} == {"ok": []}
    store.approvals.observe(approval("a1", 1, run=run.name, comment="ship it"))
    store.approvals.observe(approval("a0", -30, approved=False, run=run.name))  # too old
    waited = _waited(store, key, run)
    decision = decide(run, spec, [], T0 + timedelta(minutes=2), waited=waited)
    ok = decision.status.steps["ok"]
    assert ok.phase is StepPhase.SUCCEEDED and ok.message == "approved by alice: ship it"
    assert json.loads(decision.outputs[0].text)["approver"] == "alice"
    assert [s.step.name for s in decision.start] == ["deploy"]
    # A later rejection, while it still waits, wins.
    store.approvals.observe(approval("a2", 3, approved=False, run=run.name, comment="no"))
    rejected = decide(run, spec, [], T0 + timedelta(minutes=4), waited=_waited(store, key, run))
    assert rejected.status.steps["ok"].message == "rejected by alice: no"
    # Once the step is over, it is given nothing.
    assert _waited(store, key, after(run, decision)) == {}
