"""The Helm chart, rendered with `helm template`: least-privilege RBAC, restricted pods,
the admission policies that keep Workflows and steps to their own accounts and outputs.

Needs the helm binary: $KUBEHATCH_HELM, the pinned build in ~/.cache/kubehatch/bin
(`make binaries`), or `helm` on PATH; skipped without one. Rendering pins the Kubernetes
version of hack/versions.env, so the result does not depend on the helm build's default,
and (as a 1.30+ cluster would) declares admissionregistration.k8s.io/v1
ValidatingAdmissionPolicy, which `helm template` does not know of without a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "kubehatch"
RELEASE, NAMESPACE = "kh", "kubehatch-system"
FULLNAME = "kh-kubehatch"


def _pinned(name: str) -> str:
    for line in (REPO / "hack" / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise LookupError(name)


def find_helm() -> str | None:
    if os.environ.get("KUBEHATCH_HELM"):
        return os.environ["KUBEHATCH_HELM"]
    cache_dir = Path(
        os.environ.get("KUBEHATCH_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubehatch"
    )
    pinned = cache_dir / "bin" / f"helm-{_pinned('HELM_VERSION')}" / "helm"
    if pinned.is_file():
        return str(pinned)
    others = sorted(cache_dir.glob("bin/helm-*/helm"))
    return str(others[-1]) if others else shutil.which("helm")


HELM = find_helm()
pytestmark = pytest.mark.skipif(HELM is None, reason="no helm binary (make binaries)")
KUBE_VERSION = _pinned("KUBERNETES_VERSION")
VAP_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"
POLICY_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
ACCOUNTS_POLICY, OUTPUTS_POLICY = f"{FULLNAME}-step-accounts", f"{FULLNAME}-step-outputs"
APPROVALS_POLICY = f"{FULLNAME}-approvals"
WORKER_TASKS_POLICY = f"{FULLNAME}-worker-tasks"
USER_ROLES = {f"{FULLNAME}-approver", f"{FULLNAME}-approvals-viewer"}
"""ClusterRoles for people (approvals/), bound by no one in the chart."""
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering", *POLICY_KINDS}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60)


def template(sets: tuple[str, ...], api_versions: tuple[str, ...] = (VAP_API,)) -> Any:
    cmd = ["template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION]
    for api in api_versions:
        cmd += ["--api-versions", api]
    for value in sets:
        cmd += ["--set", value]
    return helm(*cmd)


@cache
def _render(sets: tuple[str, ...], api_versions: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    result = template(sets, api_versions)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(*sets: str, api_versions: tuple[str, ...] = (VAP_API,)) -> list[dict[str, Any]]:
    """The chart's objects, on a cluster that serves ValidatingAdmissionPolicy by default."""
    return list(_render(tuple(sets), api_versions))


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> Any:
    found = [
        d
        for d in of_kind(docs, kind)
        if d["metadata"]["name"] == name and d["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"{kind} {namespace}/{name}: {len(found)} found"
    return found[0]


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) that the rules allow."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def expand(table: dict[tuple[str, str], str]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for (g, r), verbs in table.items() for v in verbs.split()}


# The operator's rights: exactly the calls it makes (operator/kubehatch_operator/kube.py and
# the kopf handlers), as agreed with the operator. A change here is a review point.
OPERATOR_NAMESPACED = expand(
    {
        # watched (kopf), created by triggers and as child runs, patched to cancel child
        # runs (spec.cancel), deleted by TTL and history limits
        ("kubehatch.dev", "workflowruns"): "get list watch create patch delete",
        # watched, and listed when an event arrives
        ("kubehatch.dev", "workflows"): "list watch",
        # watched, deleted after their retention
        ("kubehatch.dev", "workflowevents"): "list watch delete",
        # watched (steps that wait for approval), never written
        ("kubehatch.dev", "workflowapprovals"): "list watch",
        # merge patches of the status subresources, nothing else
        ("kubehatch.dev", "workflows/status"): "patch",
        ("kubehatch.dev", "workflowruns/status"): "patch",
        ("kubehatch.dev", "workflowevents/status"): "patch",
        # owner references with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)
        ("kubehatch.dev", "workflows/finalizers"): "update",
        ("kubehatch.dev", "workflowruns/finalizers"): "update",
        # read after a 409: is the Job there the run's own?
        ("batch", "jobs"): "get list watch create delete",
        ("batch", "cronjobs"): "list watch create update delete",
        # run inputs (create), a concurrency key step's output (get)
        ("", "configmaps"): "get list watch create",
        # termination messages, and pods that never start
        ("", "pods"): "list watch",
        # Events on runs, and kopf's own: created, never patched; a Job's FailedCreate: listed
        ("", "events"): "create list",
        # worker pools: watched, their status written; their Deployments made and replaced
        ("kubehatch.dev", "workerpools"): "list watch",
        ("kubehatch.dev", "workerpools/status"): "patch",
        ("kubehatch.dev", "workerpools/finalizers"): "update",
        ("apps", "deployments"): "get create update",
        # a WorkerTask per attempt on a pool, as a Job otherwise; marked lost in its status
        ("kubehatch.dev", "workertasks"): "get list watch create delete",
        ("kubehatch.dev", "workertasks/status"): "patch",
    }
)
# kopf itself, cluster-wide: peering keep-alives, and noticing CRD changes.
KOPF_CLUSTER = expand(
    {
        ("kopf.dev", "clusterkopfpeerings"): "get list watch patch",
        ("apiextensions.k8s.io", "customresourcedefinitions"): "list watch",
    }
)
KOPF_NAMESPACED = expand({("kopf.dev", "kopfpeerings"): "get list watch patch"})


# --- lint, schema, CRDs -------------------------------------------------------------------


def test_helm_lint_is_clean() -> None:
    result = helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("replicaCount=two", "replicaCount"),
        ("watchNamespaces={Not_A_Namespace}", "watchNamespaces"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("unknownKey=1", "unknownKey"),
        ("operator.logFormat=xml", "logFormat"),
        ("triggers.eventRetention=1d", "eventRetention"),
        ("stepServiceAccount.allowed={Not_An_Account}", "allowed"),
        ("stepServiceAccount.allowed=runner", "allowed"),
        ("admissionPolicies.enabled=sometimes", "enabled"),
    ],
)
def test_schema_rejects_bad_values(value: str, complaint: str) -> None:
    cmd = ["template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, "--set", value]
    result = helm(*cmd)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_chart_crds_are_the_generated_ones_plus_kopf_peering() -> None:
    check = subprocess.run(
        [sys.executable, "-m", "kubehatch.api.crdgen", "--check", str(CHART / "crds")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, f"run `make crds`: {check.stderr}"
    names = {
        doc["metadata"]["name"]
        for path in (CHART / "crds").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    assert names == {
        "workflows.kubehatch.dev",
        "workflowruns.kubehatch.dev",
        "workerpools.kubehatch.dev",
        "workertasks.kubehatch.dev",
        "workflowevents.kubehatch.dev",
        "workflowapprovals.kubehatch.dev",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    }


def test_rbac_names_only_resources_that_exist() -> None:
    """A typo in a plural would silently grant nothing."""
    plurals = {
        f"{doc['spec']['group']}/{doc['spec']['names']['plural']}"
        for path in (CHART / "crds").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    for group, resource, _ in grants(one(render(), "ClusterRole", FULLNAME)["rules"]):
        if group in ("kubehatch.dev", "kopf.dev"):
            assert f"{group}/{resource.split('/')[0]}" in plurals, resource


# --- RBAC ---------------------------------------------------------------------------------


def test_cluster_wide_operator_gets_exactly_the_agreed_rights() -> None:
    docs = render()
    role = one(docs, "ClusterRole", FULLNAME)
    assert grants(role["rules"]) == OPERATOR_NAMESPACED | KOPF_CLUSTER
    binding = one(docs, "ClusterRoleBinding", FULLNAME)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": FULLNAME,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]
    assert not of_kind(docs, "Role") or all(
        r["metadata"]["name"] in ("kubehatch-step", "kubehatch-trigger", "kubehatch-worker")
        for r in of_kind(docs, "Role")
    )


@pytest.mark.parametrize("sets", [(), ("watchNamespaces={team-a,team-b}",)])
def test_no_rule_is_a_wildcard_or_touches_secrets_or_rbac(sets: tuple[str, ...]) -> None:
    for doc in render(*sets):
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        for group, resource, verb in grants(doc["rules"]):
            assert "*" not in (group, resource, verb), doc["metadata"]["name"]
            assert resource not in ("secrets", "serviceaccounts", "pods/exec", "nodes")
            assert group != "rbac.authorization.k8s.io"
            assert verb not in ("escalate", "bind", "impersonate", "deletecollection")


def test_step_and_trigger_accounts_can_do_one_thing_each() -> None:
    docs = render()
    step = one(docs, "Role", "kubehatch-step", NAMESPACE)
    assert grants(step["rules"]) == {("", "configmaps", "create")}
    trigger = one(docs, "Role", "kubehatch-trigger", NAMESPACE)
    assert grants(trigger["rules"]) == {("kubehatch.dev", "workflowruns", "create")}
    for name in ("kubehatch-step", "kubehatch-trigger"):
        one(docs, "ServiceAccount", name, NAMESPACE)
        binding = one(docs, "RoleBinding", name, NAMESPACE)
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == name
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}
        ]


def test_namespaced_mode_renders_roles_and_nothing_cluster_wide() -> None:
    docs = render("watchNamespaces={team-a,team-b}", "stepNamespaces={team-c,team-a}")
    # Cluster-scoped: only the admission policies, whose bindings keep them to these
    # namespaces (see the policy tests below), and the approvals' ClusterRoles for
    # people, bound by no one here; no cluster-wide rights for kubehatch at all.
    cluster_scoped = [d for d in docs if d["kind"] in CLUSTER_SCOPED]
    assert {d["kind"] for d in cluster_scoped} == POLICY_KINDS | {"ClusterRole"}
    assert {d["metadata"]["name"] for d in of_kind(docs, "ClusterRole")} == USER_ROLES
    for ns in ("team-a", "team-b"):
        role = one(docs, "Role", FULLNAME, ns)
        assert grants(role["rules"]) == OPERATOR_NAMESPACED | KOPF_NAMESPACED
        binding = one(docs, "RoleBinding", FULLNAME, ns)
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]
        one(docs, "KopfPeering", FULLNAME, ns)
    # The operator has no rights in its own namespace unless it is watched.
    assert not [
        d
        for d in of_kind(docs, "Role")
        if d["metadata"]["name"] == FULLNAME and d["metadata"]["namespace"] == NAMESPACE
    ]
    # Step and trigger accounts: release namespace + watched + step namespaces, once each.
    step_namespaces = sorted(
        d["metadata"]["namespace"]
        for d in of_kind(docs, "ServiceAccount")
        if d["metadata"]["name"] == "kubehatch-step"
    )
    assert step_namespaces == sorted([NAMESPACE, "team-a", "team-b", "team-c"])
    args = operator_container(docs)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_rbac_create_false_renders_no_rbac() -> None:
    docs = render("rbac.create=false")
    rbac_kinds = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
    assert not [d for d in docs if d["kind"] in rbac_kinds]
    assert of_kind(docs, "ServiceAccount")  # the accounts are still there


@pytest.mark.parametrize("sets", [(), ("watchNamespaces={team-a}",)])
def test_every_namespaced_object_names_its_namespace(sets: tuple[str, ...]) -> None:
    for doc in render(*sets):
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace"), doc["kind"]
        else:
            assert "namespace" not in doc["metadata"], doc["kind"]
            # Cluster-scoped names carry the release: parallel releases never collide.
            assert doc["metadata"]["name"].startswith(FULLNAME), doc["kind"]


# --- the operator Deployment -----------------------------------------------------------------


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", FULLNAME, NAMESPACE)


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = deployment(docs)["spec"]["template"]["spec"]["containers"]
    return container


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the Pod Security Standard "restricted" (v1.34) would reject in a pod spec."""
    problems = []
    pod_sc = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(flag)
    allowed_volumes = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= allowed_volumes:
            problems.append(f"volume {volume['name']}: {kinds}")
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = container.get("securityContext") or {}
        name = container["name"]

        def setting(key: str, sc: dict[str, Any] = sc) -> Any:
            return sc[key] if key in sc else pod_sc.get(key)

        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: must drop ALL capabilities")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        if setting("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot must be true")
        if setting("runAsUser") == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (setting("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort")
    return problems


@pytest.mark.parametrize(
    "sets", [(), ("watchNamespaces={team-a}", "replicaCount=2"), ("peering.enabled=false",)]
)
def test_operator_pod_meets_the_restricted_pod_security_standard(sets: tuple[str, ...]) -> None:
    pod = deployment(render(*sets))["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    sc = operator_container(render(*sets))["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 65532


def test_the_restricted_check_does_catch_violations() -> None:
    pod = {"hostPID": True, "containers": [{"name": "c", "securityContext": {}}]}
    problems = restricted_violations(pod)
    assert "hostPID" in problems
    assert len(problems) == 5  # escalation, capabilities, non-root, seccomp


def test_operator_runs_kopf_with_probes_on_its_health_endpoint() -> None:
    docs = render()
    container = operator_container(docs)
    assert container["image"] == "localhost/kubehatch/operator:0.1.0"  # the appVersion
    assert container["imagePullPolicy"] == "IfNotPresent"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["KUBEHATCH_STEP_SERVICE_ACCOUNT"] == "kubehatch-step"
    assert env["KUBEHATCH_POST_EVENTS"] == "true"
    assert env["KUBEHATCH_API_WORKERS"] == "32"
    assert env["KUBEHATCH_METRICS_PORT"] == "9090"
    assert env["KUBEHATCH_TRIGGER_SERVICE_ACCOUNT"] == "kubehatch-trigger"
    assert env["KUBEHATCH_TRIGGER_IMAGE"] == container["image"]  # has the kubehatch CLI
    assert env["KUBEHATCH_EVENT_RETENTION"] == "1h"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # kopf's peer id
    service = one(docs, "Service", f"{FULLNAME}-metrics", NAMESPACE)
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    pod_labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_values_reach_the_operator() -> None:
    container = operator_container(
        render(
            "image.tag=0.1.0-abc123",
            "stepServiceAccount.name=runner",
            "operator.postEvents=false",
            "operator.apiWorkers=8",
            "metrics.port=9191",
            "operator.extraArgs={--log-refkey}",
            "triggers.image=localhost/kubehatch/step:1",
            "triggers.eventRetention=30m",
        )
    )
    assert container["image"] == "localhost/kubehatch/operator:0.1.0-abc123"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBEHATCH_STEP_SERVICE_ACCOUNT"] == "runner"
    assert env["KUBEHATCH_POST_EVENTS"] == "false"
    assert env["KUBEHATCH_API_WORKERS"] == "8"
    assert env["KUBEHATCH_METRICS_PORT"] == "9191"
    assert env["KUBEHATCH_TRIGGER_IMAGE"] == "localhost/kubehatch/step:1"
    assert env["KUBEHATCH_EVENT_RETENTION"] == "30m"
    assert container["args"][-1] == "--log-refkey"


def test_peering_object_matches_the_operator_and_replicas_recreate() -> None:
    docs = render("replicaCount=3")
    spec = deployment(docs)["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {"type": "Recreate"}
    one(docs, "ClusterKopfPeering", FULLNAME)
    container = operator_container(docs)
    assert f"--peering={FULLNAME}" in container["args"]
    assert "--all-namespaces" in container["args"]
    # The operator gives each replica a priority from its start time (see its __main__).
    assert container["command"] == ["python3", "-m", "kubehatch_operator"]
    assert not any(a.startswith("--priority") for a in container["args"])


def test_standalone_without_peering() -> None:
    docs = render("peering.enabled=false")
    assert not of_kind(docs, "ClusterKopfPeering") and not of_kind(docs, "KopfPeering")
    container = operator_container(docs)
    assert "--standalone" in container["args"]
    assert container["command"] == ["python3", "-m", "kubehatch_operator"]


def test_namespaced_mode_passes_exact_namespaces() -> None:
    # Exact names (no globs) are what makes the operator skip cluster-wide scanning.
    args = operator_container(render("watchNamespaces={team-a}"))["args"]
    assert "--namespace=team-a" in args and "--all-namespaces" not in args


def test_schema_file_is_valid_json_and_documents_every_top_level_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])


def test_replica_count_zero_installs_everything_but_the_running_operator() -> None:
    docs = render("replicaCount=0")
    assert deployment(docs)["spec"]["replicas"] == 0
    assert of_kind(docs, "ClusterRole") and of_kind(docs, "ValidatingAdmissionPolicy")


# --- step accounts: the allow-list ----------------------------------------------------------


def allowed_env(docs: list[dict[str, Any]]) -> str:
    env = {e["name"]: e.get("value") for e in operator_container(docs)["env"]}
    return env["KUBEHATCH_ALLOWED_STEP_SERVICE_ACCOUNTS"]


@pytest.mark.parametrize(
    ("sets", "allowed"),
    [
        ((), "kubehatch-step"),
        (("stepServiceAccount.allowed={runner,batch}",), "kubehatch-step,runner,batch"),
        (("stepServiceAccount.name=runner", "stepServiceAccount.allowed={runner}"), "runner"),
    ],
)
def test_operator_learns_the_allowed_step_accounts(sets: tuple[str, ...], allowed: str) -> None:
    """The operator fails runs naming any other account, also without the policies."""
    docs = render(*sets)
    assert allowed_env(docs) == allowed
    assert allowed_env(render(*sets, "admissionPolicies.enabled=false")) == allowed
    assert allowed_env(render(*sets, api_versions=())) == allowed


@pytest.mark.parametrize(
    ("sets", "account", "whose"),
    [
        (("stepServiceAccount.allowed={runner,kh-kubehatch}",), "kh-kubehatch", "operator"),
        (("stepServiceAccount.allowed={kubehatch-trigger}",), "kubehatch-trigger", "trigger"),
        (("stepServiceAccount.name=kubehatch-trigger",), "kubehatch-trigger", "trigger"),
        (("serviceAccount.name=op", "stepServiceAccount.allowed={op}"), "op", "operator"),
        (
            ("serviceAccount.create=false", "serviceAccount.name=op", "stepServiceAccount.name=op"),
            "op",
            "operator",
        ),
        (
            ("triggerServiceAccount.name=cron", "stepServiceAccount.allowed={cron}"),
            "cron",
            "trigger",
        ),
    ],
)
def test_operator_and_trigger_accounts_can_never_run_steps(
    sets: tuple[str, ...], account: str, whose: str
) -> None:
    """Either would hand a Workflow's author that account's rights: the chart refuses."""
    for api_versions in ((VAP_API,), ()):
        result = template(sets, api_versions)
        assert result.returncode != 0
        assert f'"{account}" is the {whose}\'s ServiceAccount' in result.stderr
        assert "stepServiceAccount.allowed" in result.stderr


# --- admission policies ---------------------------------------------------------------------


def policy(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return one(docs, "ValidatingAdmissionPolicy", name)["spec"]


def binding(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return one(docs, "ValidatingAdmissionPolicyBinding", name)["spec"]


def test_four_policies_render_bound_with_deny_by_default() -> None:
    docs = render()
    every = (ACCOUNTS_POLICY, OUTPUTS_POLICY, APPROVALS_POLICY, WORKER_TASKS_POLICY)
    assert {d["metadata"]["name"] for d in of_kind(docs, "ValidatingAdmissionPolicy")} == {*every}
    for name in every:
        spec = policy(docs, name)
        assert spec["failurePolicy"] == "Fail"
        for validation in spec["validations"]:
            assert validation["reason"] == "Forbidden" and validation["messageExpression"]
        bound = binding(docs, name)
        assert bound["policyName"] == name
        assert bound["validationActions"] == ["Deny"]
        # Watching all namespaces: the policies guard all of them.
        assert "matchResources" not in bound


def test_policies_need_the_api_and_can_be_turned_off() -> None:
    for docs in (render(api_versions=()), render("admissionPolicies.enabled=false")):
        assert not [d for d in docs if d["kind"] in POLICY_KINDS]


def test_policies_guard_exactly_the_namespaces_the_release_serves() -> None:
    docs = render("watchNamespaces={team-a,team-b}", "stepNamespaces={team-c,team-a}")
    for name in (ACCOUNTS_POLICY, OUTPUTS_POLICY, APPROVALS_POLICY, WORKER_TASKS_POLICY):
        (expression,) = binding(docs, name)["matchResources"]["namespaceSelector"][
            "matchExpressions"
        ]
        assert expression["key"] == "kubernetes.io/metadata.name"
        assert expression["operator"] == "In"
        assert sorted(expression["values"]) == sorted([NAMESPACE, "team-a", "team-b", "team-c"])


def test_workflow_account_policy_allows_the_step_accounts_only() -> None:
    spec = policy(render("stepServiceAccount.allowed={runner}"), ACCOUNTS_POLICY)
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule == {
        "apiGroups": ["kubehatch.dev"],
        "apiVersions": ["v1alpha1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["workflows"],
    }
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert json.loads(variables["allowed"]) == ["kubehatch-step", "runner"]
    assert "object.spec.serviceAccountName" in variables["account"]
    (validation,) = spec["validations"]
    assert validation["expression"] == (
        "variables.account == '' || variables.account in variables.allowed"
    )
    # The message names the object, the field, the account and the fix.
    message = validation["messageExpression"]
    for part in (
        '"Workflow \'" + object.metadata.name',
        "spec.serviceAccountName: ServiceAccount '\" + variables.account",
        "use one of: kubehatch-step, runner (chart value stepServiceAccount.allowed)",
    ):
        assert part in message


def test_output_policy_lets_a_step_pod_create_only_its_own_output() -> None:
    spec = policy(render("stepServiceAccount.allowed={runner}"), OUTPUTS_POLICY)
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule == {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["configmaps"],
    }
    # Only requests of the step accounts: system:serviceaccount:<namespace>:<name>.
    (condition,) = spec["matchConditions"]
    assert (
        "request.userInfo.username.startsWith('system:serviceaccount:')" in condition["expression"]
    )
    assert '["kubehatch-step","runner"].exists(a,' in condition["expression"]
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert "request.userInfo.extra['authentication.kubernetes.io/pod-name'][0]" in variables["pod"]
    assert "variables.pod.substring(0, size(variables.pod) - 6)" in variables["job"]
    expressions = " ".join(v["expression"] for v in spec["validations"])
    assert "object.metadata.name == variables.job + '-output'" in expressions
    assert "r.apiVersion == 'kubehatch.dev/v1alpha1' && r.kind == 'WorkflowRun'" in expressions
    for validation in spec["validations"]:
        assert '"ConfigMap \'" + object.metadata.name' in validation["messageExpression"]


def test_output_policy_lets_a_step_pod_create_the_parts_of_its_large_output_and_no_more() -> None:
    """`<job>-output-<n>`, n from 1 to the most parts an output may have (and no other n)."""
    import re

    from kubehatch.api.outputs import MAX_PARTS

    spec = policy(render(), OUTPUTS_POLICY)
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert "object.metadata.name.startsWith(variables.job + '-output-')" in variables["part"]
    assert "object.metadata.name.substring(size(variables.job) + 8)" in variables["part"]
    assert len("-output-") == 8
    (name_rule,) = [v for v in spec["validations"] if "variables.part" in v["expression"]]
    (pattern,) = re.findall(r"variables\.part\.matches\('([^']+)'\)", name_rule["expression"])
    candidates = ["0", "00", "01", "1a", "-1", "", *map(str, range(1, 200))]
    allowed = [n for n in candidates if re.search(pattern, n)]
    assert allowed == [str(n) for n in range(1, MAX_PARTS + 1)]
    assert f"-output-{MAX_PARTS}" in name_rule["message"]
    assert f"-output-1' to '-{MAX_PARTS}'" in name_rule["messageExpression"]


# --- RBAC: what the review of the "Trust" issue asked for -----------------------------------


@pytest.mark.parametrize("sets", [(), ("watchNamespaces={team-a}",)])
def test_operator_may_set_blocking_owner_references(sets: tuple[str, ...]) -> None:
    """Jobs, inputs and CronJobs block their owner's deletion: needs update on finalizers."""
    docs = render(*sets)
    role = one(docs, "ClusterRole", FULLNAME) if not sets else one(docs, "Role", FULLNAME, "team-a")
    rights = grants(role["rules"])
    assert ("kubehatch.dev", "workflowruns/finalizers", "update") in rights
    assert ("kubehatch.dev", "workflows/finalizers", "update") in rights


def test_operator_writes_status_only_through_the_status_subresource() -> None:
    rights = grants(one(render(), "ClusterRole", FULLNAME)["rules"])
    for plural in ("workflows", "workflowruns", "workflowevents"):
        if plural != "workflowruns":  # child runs are cancelled with a patch of spec.cancel
            assert ("kubehatch.dev", plural, "patch") not in rights
        assert ("kubehatch.dev", plural, "update") not in rights
    assert not [r for r in rights if r[1] == "secrets"]


def test_step_pod_placement_reaches_the_operator_as_settings() -> None:
    """stepPods.nodeSelector and tolerations travel as JSON the operator's settings parse."""
    from kubehatch_operator.settings import Settings

    docs = render(
        "stepPods.nodeSelector.pool=steps",
        "stepPods.tolerations[0].key=dedicated",
        "stepPods.tolerations[0].operator=Exists",
        "stepPods.priorityClasses.3=urgent",
        "stepPods.kueueQueue=team-a",
    )
    env = {e["name"]: e["value"] for e in operator_container(docs)["env"] if "value" in e}
    steps = Settings.from_env(env).steps
    assert dict(steps.node_selector) == {"pool": "steps"}
    assert (dict(steps.priority_classes), steps.kueue_queue) == ({3: "urgent"}, "team-a")
    assert steps.tolerations == ({"key": "dedicated", "operator": "Exists"},)
    defaults = {e["name"]: e["value"] for e in operator_container(render())["env"] if "value" in e}
    assert Settings.from_env(defaults).steps.node_selector == {}
    assert Settings.from_env(defaults).steps.kueue_queue is None
