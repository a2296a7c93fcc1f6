"""The chart's part in approvals: the operator watches WorkflowApprovals, the admission
policy makes the approver the creating user and an answer final, and the ClusterRoles
for people approve with no right to change runs.

Rendered with `helm template` as in test_helm_chart.py (skipped without helm); the
policy's CEL is evaluated with cel-python against admission requests.
"""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from tests.unit.chart import test_helm_chart as chart

pytestmark = chart.pytestmark
APPROVER, VIEWER = f"{chart.FULLNAME}-approver", f"{chart.FULLNAME}-approvals-viewer"
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def _approval(approver: str, approved: bool = True, comment: str = "ok") -> dict[str, Any]:
    return {
        "apiVersion": "kubehatch.dev/v1alpha1",
        "kind": "WorkflowApproval",
        "metadata": {"name": "deploy-1-ok-x7k2p", "namespace": "team-a"},
        "spec": {
            "runRef": {"name": "deploy-1"},
            "step": "ok",
            "approved": approved,
            "approver": approver,
            "comment": comment,
        },
    }


def _admit(
    operation: str, user: str, obj: dict[str, Any], old: dict[str, Any] | None = None
) -> list[str]:
    """The messages of the approvals policy's validations that deny the request."""
    spec = chart.policy(chart.render(), chart.APPROVALS_POLICY)
    env = celpy.Environment()
    activation = {
        "request": celpy.json_to_cel({"operation": operation, "userInfo": {"username": user}}),
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
    }
    denied = []
    for validation in spec["validations"]:
        result = env.program(env.compile(validation["expression"])).evaluate(activation)
        assert not isinstance(result, Exception), (validation["expression"], result)
        if not result:
            message = env.program(env.compile(validation["messageExpression"]))
            denied.append(str(message.evaluate(activation)))
    return denied


def test_the_policy_guards_creating_and_changing_approvals() -> None:
    spec = chart.policy(chart.render(), chart.APPROVALS_POLICY)
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule == {
        "apiGroups": ["kubehatch.dev"],
        "apiVersions": ["v1alpha1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["workflowapprovals"],
    }
    assert spec["failurePolicy"] == "Fail"


def test_an_approval_is_given_in_ones_own_name() -> None:
    assert _admit("CREATE", "alice", _approval("alice")) == []
    assert _admit("CREATE", "alice", _approval("alice", approved=False)) == []
    (denied,) = _admit("CREATE", "mallory", _approval("alice"))
    assert denied.startswith("WorkflowApproval 'deploy-1-ok-x7k2p': spec.approver: 'alice'")
    assert "is not you (mallory)" in denied and "kubectl auth whoami" in denied
    account = "system:serviceaccount:ci:deployer"
    assert _admit("CREATE", account, _approval(account)) == []


def test_an_answer_is_final() -> None:
    given = _approval("alice")
    relabelled = {**given, "metadata": {**given["metadata"], "labels": {"team": "a"}}}
    assert _admit("UPDATE", "alice", relabelled, given) == []
    turned = _approval("alice", approved=False)
    (denied,) = _admit("UPDATE", "alice", turned, given)
    assert "an answer is final" in denied
    # Nor may another take it over: the spec is the same for everyone.
    assert _admit("UPDATE", "bob", _approval("bob"), given)


def test_the_operator_only_reads_approvals() -> None:
    rights = chart.grants(chart.one(chart.render(), "ClusterRole", chart.FULLNAME)["rules"])
    assert {r for r in rights if r[1] == "workflowapprovals"} == {
        ("kubehatch.dev", "workflowapprovals", "list"),
        ("kubehatch.dev", "workflowapprovals", "watch"),
    }


def test_approvers_may_answer_and_read_runs_but_not_change_them() -> None:
    role = chart.one(chart.render(), "ClusterRole", APPROVER)
    assert chart.grants(role["rules"]) == chart.expand(
        {
            ("kubehatch.dev", "workflowapprovals"): "create get list watch",
            ("kubehatch.dev", "workflowruns"): "get list watch",
        }
    )
    viewer = chart.one(chart.render(), "ClusterRole", VIEWER)
    assert chart.grants(viewer["rules"]) == chart.expand(
        {("kubehatch.dev", "workflowapprovals"): "get list watch"}
    )


def _aggregated(docs: list[dict[str, Any]], name: str) -> set[str]:
    labels = chart.one(docs, "ClusterRole", name)["metadata"]["labels"]
    return {k.removeprefix(AGGREGATE) for k, v in labels.items() if k.startswith(AGGREGATE)}


@pytest.mark.parametrize(
    ("sets", "approver"),
    [((), {"admin"}), (("approvals.aggregateToEdit=true",), {"admin", "edit"})],
)
def test_admins_approve_editors_only_when_asked_viewers_see(
    sets: tuple[str, ...], approver: set[str]
) -> None:
    docs = chart.render(*sets)
    assert _aggregated(docs, APPROVER) == approver
    assert _aggregated(docs, VIEWER) == {"view"}
    # Bound by no one here: cluster and namespace admins bind them (RoleBindings).
    bound = {
        d["roleRef"]["name"] for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
    }
    assert not bound & {APPROVER, VIEWER}


@pytest.mark.parametrize("sets", [("approvals.clusterRoles=false",), ("rbac.create=false",)])
def test_the_roles_can_be_left_out(sets: tuple[str, ...]) -> None:
    names = {d["metadata"]["name"] for d in chart.of_kind(chart.render(*sets), "ClusterRole")}
    assert not names & {APPROVER, VIEWER}
