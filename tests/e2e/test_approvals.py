"""Approvals on a real cluster: a run waits for a person with no pod, `kubehatch approve`
lets it go on (the next step reads who approved), `--reject` fails it saying who and
why; and, where the chart is installed, nobody may approve in another's name, nor
without the right to, nor change an answer given.

The policy tests install the chart with the operator scaled to 0 (its RBAC and policies
are what they need), in a namespace and under a release name of this module's own,
watching only that namespace, as test_isolation.py does.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubehatch import workflow_manifests
from tests.e2e import kube
from tests.e2e.support import kubehatch, wait_for
from tests.e2e.test_chart import Release, helm_bin  # noqa: F401 - helm_bin is a fixture
from tests.e2e.workers import approvals

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "kubehatch.dev", "v1alpha1", "workflowapprovals"
(GATE,) = workflow_manifests(approvals.worker, worker_ref=approvals.WORKER_REF)
FINAL = {"Succeeded", "Failed", "Cancelled", "TimedOut"}


def whoami() -> str:
    review = client.AuthenticationV1Api().create_self_subject_review(client.V1SelfSubjectReview())
    return str(review.status.user_info.username)


def waiting(namespace: str, run: str) -> dict[str, Any]:
    """The run once its approval step waits."""

    def ok_running() -> dict[str, Any] | None:
        status = kube.get_run(namespace, run).get("status") or {}
        return status if status.get("steps", {}).get("ok", {}).get("phase") == "Running" else None

    return wait_for(ok_running, 120, f"step ok of run {run} to wait for approval")


def cli(*argv: str) -> str:
    done = kubehatch(*argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def refused(*argv: str) -> str:
    done = kubehatch(*argv)
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


@pytest.mark.usefixtures("operator")
def test_a_run_waits_for_approval_without_a_pod_and_goes_on_when_approved(
    op_namespace: str, step_image: str
) -> None:
    ns, me = op_namespace, whoami()
    kube.apply_workflow(ns, GATE, step_image)
    kube.create_run(ns, "ship", "gate")
    status = waiting(ns, "ship")
    assert status["phase"] == "Running"
    assert "waiting for approval" in status["steps"]["ok"]["message"]
    described = cli("describe", "ship", "-n", ns)
    assert "waiting for approval: deploy to production?  (kubehatch approve ship ok)" in described
    # Wrong step, wrong run, a step that does not wait: refused before anything is created.
    assert "does not wait for approval (its approval steps: ok)" in refused(
        "approve", "ship", "deploy", "-n", ns
    )
    assert "workflowrun 'nope' not found" in refused("approve", "nope", "ok", "-n", ns)
    time.sleep(3)  # a pod, if any, would have been asked for by now
    assert kube.jobs_of(ns, "ship") == []

    said = cli("approve", "ship", "ok", "--comment", "ok", "-n", ns)
    assert said.startswith("workflowapproval/ship-ok-") and "approved" in said
    done = kube.wait_for_phase(ns, "ship", FINAL, timeout=180)["status"]
    assert done["phase"] == "Succeeded", done
    ok = done["steps"]["ok"]
    assert ok["message"] == f"approved by {me}: ok"
    answer = kube.output(ns, ok["outputConfigMap"])
    assert (answer["approved"], answer["approver"], answer["comment"]) == (True, me, "ok")
    deployed = kube.output(ns, done["steps"]["deploy"]["outputConfigMap"])
    assert deployed == {"deployed": True, "approver": me, "comment": "ok"}
    assert [j.metadata.labels["kubehatch.dev/step"] for j in kube.jobs_of(ns, "ship")] == ["deploy"]
    assert f"approved by {me}: ok" in cli("describe", "ship", "-n", ns)
    assert "is not waiting: it is Succeeded" in refused("approve", "ship", "ok", "-n", ns)
    listed = subprocess.run(
        ["kubectl", "get", "wfa", "-n", ns, "-l", "kubehatch.dev/run=ship", "--no-headers"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert [line.split()[1:5] for line in listed.splitlines()] == [["ship", "ok", "true", me]]


@pytest.mark.usefixtures("operator")
def test_a_rejection_fails_the_step_saying_who_and_why(op_namespace: str, step_image: str) -> None:
    ns, me = op_namespace, whoami()
    kube.apply_workflow(ns, GATE, step_image)
    kube.create_run(ns, "hold", "gate")
    waiting(ns, "hold")
    cli("approve", "hold", "ok", "--reject", "--comment", "not on a Friday", "-n", ns)
    done = kube.wait_for_phase(ns, "hold", FINAL, timeout=120)["status"]
    assert done["phase"] == "Failed", done
    assert done["steps"]["ok"]["phase"] == "Failed"
    assert done["steps"]["ok"]["message"] == f"rejected by {me}: not on a Friday"
    assert done["steps"]["deploy"]["phase"] == "Skipped"
    assert kube.jobs_of(ns, "hold") == []
    assert f"rejected by {me}: not on a Friday" in cli("describe", "hold", "-n", ns)


# --- where the chart is installed: who may approve, in whose name ------------------------------


def as_user(user: str) -> client.CustomObjectsApi:
    """The API as ``user`` (impersonated: the admin may; in system:authenticated, like
    anyone who logged in)."""
    api = client.ApiClient(client.Configuration.get_default_copy())
    api.set_default_header("Impersonate-User", user)
    return client.CustomObjectsApi(api)


def answer(name: str, approver: str, approved: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowApproval",
        "metadata": {"name": name},
        "spec": {"runRef": {"name": "ship"}, "step": "ok", "approved": approved,
                 "approver": approver, "comment": "from the test"},
    }  # fmt: skip


def create(api: client.CustomObjectsApi, ns: str, body: dict[str, Any], **options: Any) -> Any:
    return api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body, **options)


def refusal(call: Any, *args: Any, **options: Any) -> tuple[int, str]:
    with pytest.raises(ApiException) as caught:
        call(*args, **options)
    body = json.loads(caught.value.body or "{}")
    return caught.value.status, str(body.get("message", ""))


@pytest.fixture(scope="module")
def guarded(helm_bin: str, kubeconfig: str, crds: None) -> Iterator[tuple[str, str]]:  # noqa: F811
    """The chart (no operator pod) in a namespace of its own, alice bound to the approver
    role there; yields (namespace, release fullname). Removed even on failure."""
    namespace = f"e2e-apr-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    release = Release(helm_bin, kubeconfig, namespace, namespace)
    try:
        release.install("replicaCount=0", f"watchNamespaces={{{namespace}}}")
        client.RbacAuthorizationV1Api().create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="approvers"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io",
                    kind="ClusterRole",
                    name=f"{release.fullname}-approver",
                ),
                subjects=[client.RbacV1Subject(kind="User", name="alice")],
            ),
        )
        mine = answer("probe", "someone-else")
        wait_for(
            lambda: _denied_by_policy(create, client.CustomObjectsApi(), namespace, mine),
            30,
            "the approvals policy to be enforced",
        )
        yield namespace, release.fullname
    finally:
        subprocess.run(
            [helm_bin, "uninstall", namespace, "-n", namespace, "--kubeconfig", kubeconfig,
             "--wait", "--timeout", "60s"],
            capture_output=True, timeout=90,
        )  # fmt: skip
        core.delete_namespace(namespace, propagation_policy="Background")


def _denied_by_policy(call: Any, *args: Any) -> bool:
    try:
        call(*args, dry_run="All")
    except ApiException as err:
        return err.status == 403 and "ValidatingAdmissionPolicy" in (err.body or "")
    return False


def test_nobody_approves_in_anothers_name(guarded: tuple[str, str]) -> None:
    ns, fullname = guarded
    admin = client.CustomObjectsApi()
    # Even a cluster admin gives answers in their own name only.
    code, message = refusal(create, admin, ns, answer("forged", "alice"))
    assert code == 403, message
    assert f"ValidatingAdmissionPolicy '{fullname}-approvals'" in message
    assert "WorkflowApproval 'forged': spec.approver: 'alice' is not you" in message
    alice = as_user("alice")
    code, message = refusal(create, alice, ns, answer("as-bob", "bob"))
    assert code == 403 and "spec.approver: 'bob' is not you (alice)" in message
    # In her own name, alice may: the approver role, bound to her in this namespace.
    create(alice, ns, answer("by-alice", "alice"))
    got = admin.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "by-alice")
    assert got["spec"]["approver"] == "alice" and got["spec"]["approved"] is True


def test_who_lacks_the_right_cannot_approve_and_an_answer_is_final(
    guarded: tuple[str, str],
) -> None:
    ns, _ = guarded
    code, message = refusal(create, as_user("mallory"), ns, answer("by-mallory", "mallory"))
    assert code == 403 and "cannot create resource" in message, message
    alice = as_user("alice")
    create(alice, ns, answer("final", "alice"))
    # Approvers may not change runs, nor their answers (no update, no delete).
    for call, args in (
        (alice.patch_namespaced_custom_object,
         (GROUP, VERSION, ns, "workflowruns", "ship", {"spec": {"cancel": True}})),
        (alice.delete_namespaced_custom_object, (GROUP, VERSION, ns, PLURAL, "final")),
    ):  # fmt: skip
        code, message = refusal(call, *args)
        assert code == 403 and "cannot" in message, message
    # And nobody, not even the admin, turns an approval into a rejection.
    turned = {"spec": {"approved": False}}
    code, message = refusal(
        client.CustomObjectsApi().patch_namespaced_custom_object,
        GROUP, VERSION, ns, PLURAL, "final", turned,
    )  # fmt: skip
    assert code in (403, 422) and "an answer is final" in message, message


def can(namespace: str, user: str, verb: str) -> bool:
    """`kubectl auth can-i VERB workflowapprovals -n NS --as USER`."""
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user, groups=["system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=verb, group=GROUP, resource=PLURAL
            ),
        )
    )  # fmt: skip
    return bool(client.AuthorizationV1Api().create_subject_access_review(review).status.allowed)


def test_namespace_admins_approve_editors_and_viewers_see(guarded: tuple[str, str]) -> None:
    """The aggregated roles: admin approves, edit and view read (aggregateToEdit is off)."""
    ns, _ = guarded
    rbac = client.RbacAuthorizationV1Api()
    for user, role in (("ann", "admin"), ("ed", "edit"), ("vi", "view")):
        rbac.create_namespaced_role_binding(
            ns,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name=f"{user}-{role}"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role
                ),
                subjects=[client.RbacV1Subject(kind="User", name=user)],
            ),
        )
    expected = {
        ("ann", "create"): True, ("ann", "list"): True,
        ("ed", "create"): False, ("ed", "list"): True,
        ("vi", "create"): False, ("vi", "get"): True,
        ("nobody", "list"): False,
    }  # fmt: skip
    # The aggregation controller fills the built-in roles a moment after the chart lands.
    wait_for(
        lambda: {key: can(ns, *key) for key in expected} == expected,
        30,
        "admin, edit and view to take the approvals' roles",
    )
