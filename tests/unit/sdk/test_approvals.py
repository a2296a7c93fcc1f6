"""Approvals in the SDK: the WorkflowApproval type and its CRD, ``Client.approve`` and
``kubehatch approve`` (against a fake client: who may answer what, and the errors), and
``kubehatch describe`` on an approval step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from kubehatch import _approvals
from kubehatch.api import RESOURCES, wire
from kubehatch.api.crdgen import crd
from kubehatch.api.workflowapproval import WorkflowApproval
from kubehatch.api.workflowrun import WorkflowRun
from kubehatch.cli import approve as approve_cli
from kubehatch.cli import build_parser
from kubehatch.cli.describe import describe
from kubehatch.errors import KubehatchError

T0 = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
SPEC = {
    "image": "i:1",
    "service": "s",
    "steps": [
        {"name": "build", "action": "build"},
        {"name": "ok", "parents": ["build"], "wait": {"approval": {"message": "deploy?"}}},
        {"name": "nap", "parents": ["build"], "wait": {"sleep": "1h"}},
        {"name": "deploy", "action": "deploy", "parents": ["ok"]},
    ],
}


def run_with(steps: dict[str, Any], phase: str = "Running", name: str = "r1") -> WorkflowRun:
    return WorkflowRun.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"workflowRef": {"name": "wf"}, "triggeredBy": {"type": "Manual"}},
            "status": {"phase": phase, "startedAt": T0, "workflowSpec": SPEC, "steps": steps},
        }
    )


WAITING = {"build": {"phase": "Succeeded"}, "ok": {"phase": "Running", "startedAt": T0}}


# --- the type -------------------------------------------------------------------------------


def test_an_approval_names_run_step_and_approver_and_approves_by_default() -> None:
    parsed = WorkflowApproval.model_validate(
        {"spec": {"runRef": {"name": "r1"}, "step": "ok", "approver": "alice"}}
    )
    assert parsed.spec.approved is True and parsed.spec.comment is None
    assert parsed.to_manifest()["spec"] == {
        "runRef": {"name": "r1"},
        "step": "ok",
        "approved": True,
        "approver": "alice",
    }


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ({"step": "ok", "approver": "alice"}, "runRef"),
        ({"runRef": {"name": "r1"}, "step": "Not_A_Step", "approver": "a"}, "not a valid name"),
        ({"runRef": {"name": "r1"}, "step": "ok", "approver": ""}, "at least 1"),
        ({"runRef": {"name": "r1"}, "step": "ok"}, "approver"),
        ({"runRef": {"name": "r1"}, "step": "ok", "approver": "a", "comment": "x" * 1025}, "1024"),
    ],
)
def test_bad_approvals_are_refused(spec: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        WorkflowApproval.model_validate({"spec": spec})


def test_the_crd_is_generated_final_and_prints_the_answer() -> None:
    assert WorkflowApproval in RESOURCES
    version = crd(WorkflowApproval)["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    assert spec["properties"]["approved"]["default"] is True
    assert spec["properties"]["comment"]["maxLength"] == 1024
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Run", "Step", "Approved", "Approver", "Comment", "Age"]


# --- Client.approve ---------------------------------------------------------------------------


class FakeClient:
    """What Client.approve uses, recording what it creates."""

    namespace = "team-a"
    api_client = None
    approve = _approvals.approve

    def __init__(self, run: WorkflowRun | None) -> None:
        self.run = run
        self.created: list[dict[str, Any]] = []

    def get_run(self, name: str) -> WorkflowRun:
        if self.run is None or self.run.name != name:
            raise KubehatchError(f"workflowrun {name!r} not found in namespace 'team-a'")
        return self.run

    def _create(self, plural: str, body: dict[str, Any]) -> str:
        assert plural == "workflowapprovals"
        self.created.append(body)
        return f"{body['metadata']['generateName']}x7k2p"

    def _api_errors(self, *_: Any) -> Any:  # pragma: no cover - whoami is replaced
        raise AssertionError


@pytest.fixture(autouse=True)
def alice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_approvals, "whoami", lambda _client: "alice")


def test_approve_creates_an_approval_in_the_callers_name() -> None:
    api = FakeClient(run_with(WAITING))
    assert api.approve("r1", "ok", comment="ship it") == "r1-ok-x7k2p"
    (body,) = api.created
    assert body["kind"] == "WorkflowApproval" and body["apiVersion"] == wire.API_VERSION
    assert body["metadata"]["generateName"] == "r1-ok-"
    assert body["metadata"]["labels"] == {wire.LABEL_RUN: "r1", wire.LABEL_STEP: "ok"}
    assert body["spec"] == {
        "runRef": {"name": "r1"},
        "step": "ok",
        "approved": True,
        "comment": "ship it",
        "approver": "alice",
    }
    api.approve("r1", "ok", approved=False)
    assert api.created[1]["spec"]["approved"] is False and "comment" not in api.created[1]["spec"]


def test_long_names_keep_to_what_generate_name_allows() -> None:
    name = "r" * 100
    api = FakeClient(run_with(WAITING, name=name))
    api.approve(name, "ok")
    assert len(api.created[0]["metadata"]["generateName"]) == _approvals.MAX_PREFIX


@pytest.mark.parametrize(
    ("steps", "phase", "step", "complaint"),
    [
        ({}, "Pending", "ok", "run 'r1' has not started"),
        (WAITING, "Running", "nope", "run 'r1' has no step 'nope' (its approval steps: ok)"),
        (WAITING, "Running", "build", "step 'build' of run 'r1' does not wait for approval"),
        (WAITING, "Running", "nap", "does not wait for approval (its approval steps: ok)"),
        ({"build": {"phase": "Running"}}, "Running", "ok", "does not wait yet (Pending"),
        (
            {"ok": {"phase": "Failed", "message": "rejected by bob: no"}},
            "Failed",
            "ok",
            "is not waiting: it is Failed: rejected by bob: no",
        ),
        ({"ok": {"phase": "Succeeded"}}, "Running", "ok", "is not waiting: it is Succeeded"),
    ],
)
def test_only_a_waiting_approval_step_can_be_answered(
    steps: dict[str, Any], phase: str, step: str, complaint: str
) -> None:
    run = run_with(steps, phase)
    if phase == "Pending":
        run = run.model_copy(update={"status": None})
    api = FakeClient(run)
    with pytest.raises(KubehatchError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        api.approve("r1", step)
    assert api.created == []


def test_a_missing_run_and_a_long_comment_are_refused_before_anything_is_created() -> None:
    api = FakeClient(None)
    with pytest.raises(KubehatchError, match="workflowrun 'r1' not found"):
        api.approve("r1", "ok")
    api = FakeClient(run_with(WAITING))
    with pytest.raises(KubehatchError, match="the comment has 1025 characters; at most 1024"):
        api.approve("r1", "ok", comment="x" * 1025)
    assert api.created == []


# --- the CLI ---------------------------------------------------------------------------------


def test_the_cli_approves_and_rejects(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeClient(run_with(WAITING))
    monkeypatch.setattr(approve_cli, "client", lambda args: api)
    parser = build_parser()
    args = parser.parse_args(["approve", "r1", "ok", "--comment", "fine", "-n", "team-a"])
    assert (args.run, args.step, args.reject, args.namespace) == ("r1", "ok", False, "team-a")
    assert approve_cli.run(args) == 0
    assert capsys.readouterr().out == (
        "workflowapproval/r1-ok-x7k2p created: step ok of run r1 approved\n"
    )
    assert approve_cli.run(parser.parse_args(["approve", "r1", "ok", "--reject", "-m", "no"])) == 0
    assert "step ok of run r1 rejected" in capsys.readouterr().out
    assert [b["spec"]["approved"] for b in api.created] == [True, False]
    assert api.created[1]["spec"]["comment"] == "no"


def test_the_cli_says_why_it_cannot_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubehatch.cli import main

    monkeypatch.setattr(approve_cli, "client", lambda args: FakeClient(run_with(WAITING)))
    assert main(["approve", "r1", "build"]) != 0
    err = capsys.readouterr().err
    assert "step 'build' of run 'r1' does not wait for approval (its approval steps: ok)" in err
    assert "Traceback" not in err


# --- describe --------------------------------------------------------------------------------


def test_describe_shows_the_question_then_the_answer() -> None:
    waiting = describe(run_with(WAITING))
    assert "waiting for approval: deploy?  (kubehatch approve r1 ok)" in waiting
    done = {**WAITING, "ok": {"phase": "Succeeded", "message": "approved by alice: ship it"}}
    assert "      approved by alice: ship it" in describe(run_with(done))
    rejected = {**WAITING, "ok": {"phase": "Failed", "message": "rejected by bob: no"}}
    assert "      rejected by bob: no" in describe(run_with(rejected, "Failed"))
