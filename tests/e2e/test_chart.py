"""The Helm chart on a real cluster: install, run the two-step example, upgrade, uninstall.

The operator runs as the chart's Deployment, from the image built here
(hack/images/build-images.sh); the steps run in the step image, which holds examples/.
On the local cluster the images are built (cached by content) and imported into its
containerd; on another cluster they must already be loaded (`make kind-up`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import REPO_ROOT, wait_for

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "kubehatch"
IMAGES = REPO_ROOT / "hack" / "images"
GROUP, VERSION = "kubehatch.dev", "v1alpha1"
WORKER = "examples.ex03_two_step:worker"
KUBEHATCH_CRDS = ("workflows", "workflowruns", "workflowevents", "workerpools", "workertasks")


# --- tools: helm and the images ---------------------------------------------------------------


def _pinned(name: str) -> str:
    for line in (REPO_ROOT / "hack" / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise LookupError(name)


def _cache_dir() -> Path:
    if os.environ.get("KUBEHATCH_CACHE"):
        return Path(os.environ["KUBEHATCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubehatch"


@pytest.fixture(scope="module")
def helm_bin() -> str:
    """The pinned helm (built from its Go module into the cache when missing)."""
    if os.environ.get("KUBEHATCH_HELM"):
        return os.environ["KUBEHATCH_HELM"]
    pinned = _cache_dir() / "bin" / f"helm-{_pinned('HELM_VERSION')}" / "helm"
    if not pinned.is_file():
        subprocess.run(
            ["bash", str(REPO_ROOT / "hack" / "cluster" / "build-binaries.sh"), "helm"], check=True
        )
    return str(pinned)


def _local_containerd() -> Path | None:
    """The local cluster's containerd socket, when that cluster runs on this machine."""
    sys.path.insert(0, str(REPO_ROOT / "hack" / "cluster"))
    try:
        from localcluster.layout import Layout
    finally:
        sys.path.pop(0)
    socket = Layout.from_env().containerd_socket
    return socket if socket.exists() else None


def _parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line.startswith("KUBEHATCH_"))


@pytest.fixture(scope="module")
def images(kubeconfig: str) -> dict[str, str]:
    """KUBEHATCH_OPERATOR_IMAGE, KUBEHATCH_STEP_IMAGE, KUBEHATCH_IMAGE_TAG, ... (loaded)."""
    script = str(IMAGES / "build-images.sh")
    socket = _local_containerd()
    if socket is not None:
        # The names of what this very call built: the sources may change meanwhile.
        env = {**os.environ, "CONTAINERD_ADDRESS": str(socket)}
        started = time.monotonic()
        out = subprocess.run(
            ["bash", script, "load", "kubehatch"], stdout=subprocess.PIPE, text=True, env=env
        )
        assert out.returncode == 0, "building or loading the images failed (output above)"
        print(f"images built and loaded in {time.monotonic() - started:.1f}s")
        return _parse_env(out.stdout)
    out = subprocess.run(["bash", script, "env"], capture_output=True, text=True, check=True)
    found = _parse_env(out.stdout)
    present = {
        name
        for node in client.CoreV1Api().list_node().items
        for image in node.status.images or []
        for name in image.names or []
    }
    for key in ("KUBEHATCH_OPERATOR_IMAGE", "KUBEHATCH_STEP_IMAGE"):
        # kind lists a localhost/ image as e.g. docker.io/localhost/...: compare the tails.
        if not any(name.endswith(found[key].split("/", 1)[1]) for name in present):
            pytest.skip(f"{found[key]} is not on the cluster's node: run `make kind-up`")
    return found


class Release:
    """One helm release of the chart, driven through the helm CLI."""

    def __init__(self, helm: str, kubeconfig: str, name: str, namespace: str) -> None:
        self.helm, self.kubeconfig, self.name, self.namespace = helm, kubeconfig, name, namespace
        self.fullname = f"{name}-kubehatch"

    def run(self, *args: str, timeout: float = 150) -> str:
        cmd = [self.helm, *args, "--kubeconfig", self.kubeconfig, "-n", self.namespace]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{' '.join(args[:2])}: {result.stderr}{result.stdout}"
        return result.stdout

    def install(self, *values: str, upgrade: bool = False) -> float:
        started = time.monotonic()
        verb = ["upgrade"] if upgrade else ["install"]
        sets = [arg for value in values for arg in ("--set", value)]
        self.run(*verb, self.name, str(CHART), *sets, "--wait", "--timeout", "120s")
        return time.monotonic() - started

    def uninstall(self) -> None:
        self.run("uninstall", self.name, "--wait", "--timeout", "60s")

    def operator_logs(self) -> str:
        core = client.CoreV1Api()
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=operator"
        logs = []
        for pod in core.list_namespaced_pod(self.namespace, label_selector=selector).items:
            try:
                text = core.read_namespaced_pod_log(pod.metadata.name, self.namespace)
            except ApiException as err:
                text = f"(no log: {err.reason})"
            lines = [line for line in text.splitlines() if "/healthz" not in line]
            logs.append(f"--- {pod.metadata.name}\n" + "\n".join(lines[-40:]))
        return "\n".join(logs)


@pytest.fixture
def release(helm_bin: str, kubeconfig: str, namespace: str) -> Iterator[Release]:
    """A release named after the test's namespace (cluster-scoped names stay unique)."""
    rel = Release(helm_bin, kubeconfig, namespace, namespace)
    try:
        yield rel
    finally:
        print(rel.operator_logs())
        subprocess.run(
            [helm_bin, "uninstall", rel.name, "-n", namespace, "--kubeconfig", kubeconfig],
            capture_output=True,
            timeout=60,
        )


# --- the workflow -----------------------------------------------------------------------------


def two_step_workflow(image: str) -> dict[str, Any]:
    """The guide's two-step workflow (examples/ex03_two_step.py), in the step image."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": "two-step-workflow"},
        "spec": {
            "image": image,
            "worker": WORKER,
            "steps": [
                {"name": "step-one", "action": "two-step-workflow:step-one"},
                {
                    "name": "step-two",
                    "action": "two-step-workflow:step-two",
                    "parents": ["step-one"],
                },
            ],
        },
    }


def run_to_success(namespace: str, name: str, username: str) -> float:
    """Create a WorkflowRun of the two-step workflow; wait for Succeeded; check outputs."""
    custom, core = client.CustomObjectsApi(), client.CoreV1Api()
    started = time.monotonic()
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "workflowruns",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowRun",
            "metadata": {"name": name},
            "spec": {"workflowRef": {"name": "two-step-workflow"}, "input": {"username": username}},
        },
    )

    def finished() -> dict[str, Any] | None:
        run = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "workflowruns", name)
        phase = (run.get("status") or {}).get("phase")
        return run if phase in ("Succeeded", "Failed", "TimedOut", "Cancelled") else None

    run = wait_for(finished, 90, f"run {name} to finish")
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    outputs = {}
    for step in ("step-one", "step-two"):
        cm = core.read_namespaced_config_map(status["steps"][step]["outputConfigMap"], namespace)
        outputs[step] = cm.data["output.json"]
    assert f"Username is: {username}" in outputs["step-one"]
    assert f"Above message is: Username is: {username}" in outputs["step-two"]
    return time.monotonic() - started


def apply_workflow(namespace: str, image: str) -> None:
    client.CustomObjectsApi().create_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", two_step_workflow(image)
    )


def deployment_ready(rel: Release) -> None:
    dep = client.AppsV1Api().read_namespaced_deployment(rel.fullname, rel.namespace)
    assert (dep.status.ready_replicas or 0) == dep.spec.replicas >= 1


# --- what uninstall leaves behind ---------------------------------------------------------


def leftovers(rel: Release) -> list[str]:
    """Every object of the release, or of kubehatch in its namespace, that still exists."""
    core, apps, rbac = client.CoreV1Api(), client.AppsV1Api(), client.RbacAuthorizationV1Api()
    batch, custom = client.BatchV1Api(), client.CustomObjectsApi()
    ns, selector = rel.namespace, f"app.kubernetes.io/instance={rel.name}"
    found = [
        f"ClusterRole/{o.metadata.name}"
        for o in rbac.list_cluster_role(label_selector=selector).items
    ]
    found += [
        f"ClusterRoleBinding/{o.metadata.name}"
        for o in rbac.list_cluster_role_binding(label_selector=selector).items
    ]
    admission = client.AdmissionregistrationV1Api()
    found += [
        f"ValidatingAdmissionPolicy/{o.metadata.name}"
        for o in admission.list_validating_admission_policy(label_selector=selector).items
    ]
    found += [
        f"ValidatingAdmissionPolicyBinding/{o.metadata.name}"
        for o in admission.list_validating_admission_policy_binding(label_selector=selector).items
    ]
    for plural in ("clusterkopfpeerings",):
        items = custom.list_cluster_custom_object("kopf.dev", "v1", plural, label_selector=selector)
        found += [f"{plural}/{o['metadata']['name']}" for o in items["items"]]
    listers = {
        "ServiceAccount": core.list_namespaced_service_account,
        "Service": core.list_namespaced_service,
        "Role": rbac.list_namespaced_role,
        "RoleBinding": rbac.list_namespaced_role_binding,
        "Deployment": apps.list_namespaced_deployment,
    }
    for kind, lister in listers.items():
        found += [f"{kind}/{o.metadata.name}" for o in lister(ns, label_selector=selector).items]
    # Anything the operator made (Jobs, pods, ConfigMaps) and kubehatch's own objects.
    found += [f"Job/{o.metadata.name}" for o in batch.list_namespaced_job(ns).items]
    found += [f"Pod/{o.metadata.name}" for o in core.list_namespaced_pod(ns).items]
    found += [
        f"ConfigMap/{o.metadata.name}"
        for o in core.list_namespaced_config_map(ns).items
        if o.metadata.name != "kube-root-ca.crt"
    ]
    for plural in (*KUBEHATCH_CRDS, "kopfpeerings"):
        group = "kopf.dev" if plural == "kopfpeerings" else GROUP
        version = "v1" if plural == "kopfpeerings" else VERSION
        items = custom.list_namespaced_custom_object(group, version, ns, plural)["items"]
        found += [f"{plural}/{o['metadata']['name']}" for o in items]
    return found


def delete_workflow_objects(namespace: str) -> None:
    """Users' objects: not Helm's to delete. Their Jobs, pods and ConfigMaps follow by GC."""
    custom = client.CustomObjectsApi()
    for plural in ("workflowruns", "workflows"):
        for obj in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]:
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, obj["metadata"]["name"]
            )


# --- tests --------------------------------------------------------------------------------------


def test_install_run_upgrade_uninstall(
    release: Release, images: dict[str, str], namespace: str
) -> None:
    timings = {}
    # Default values: the operator watches all namespaces, with a ClusterRole.
    timings["install"] = release.install(f"image.tag={images['KUBEHATCH_IMAGE_TAG']}")
    deployment_ready(release)
    client.RbacAuthorizationV1Api().read_cluster_role(release.fullname)
    for policy in ("step-accounts", "step-outputs"):  # a 1.30+ cluster serves them
        client.AdmissionregistrationV1Api().read_validating_admission_policy_binding(
            f"{release.fullname}-{policy}"
        )
    apply_workflow(namespace, images["KUBEHATCH_STEP_IMAGE"])
    timings["run"] = run_to_success(namespace, "first", "ada")

    # Upgrade: a changed value reaches a new operator pod, which carries on.
    timings["upgrade"] = release.install(
        f"image.tag={images['KUBEHATCH_IMAGE_TAG']}", "operator.postEvents=false", upgrade=True
    )
    deployment_ready(release)
    assert "REVISION: 2" in release.run("status", release.name)
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component=operator"
    (pod,) = [
        p
        for p in client.CoreV1Api().list_namespaced_pod(namespace, label_selector=selector).items
        if p.metadata.deletion_timestamp is None
    ]
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["KUBEHATCH_POST_EVENTS"] == "false"
    timings["run (after upgrade)"] = run_to_success(namespace, "second", "grace")

    delete_workflow_objects(namespace)
    started = time.monotonic()
    release.uninstall()
    wait_for(lambda: not leftovers(release), 60, "the release's objects to be gone")
    timings["uninstall"] = time.monotonic() - started
    assert release.name not in release.run("list", "-q")
    extensions = client.ApiextensionsV1Api()
    for plural in KUBEHATCH_CRDS:  # Helm keeps CRDs, and so must we
        extensions.read_custom_resource_definition(f"{plural}.{GROUP}")
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def test_step_pods_pass_restricted_pod_security_admission(
    helm_bin: str, kubeconfig: str, images: dict[str, str]
) -> None:
    core = client.CoreV1Api()
    namespace = f"e2e-restricted-{uuid.uuid4().hex[:6]}"
    labels = {
        f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")
    }
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels))
    )
    rel = Release(helm_bin, kubeconfig, namespace, namespace)
    try:
        # Admission of the operator's own pod is part of the check.
        rel.install(
            f"image.tag={images['KUBEHATCH_IMAGE_TAG']}", f"watchNamespaces={{{namespace}}}"
        )
        deployment_ready(rel)
        apply_workflow(namespace, images["KUBEHATCH_STEP_IMAGE"])
        run_to_success(namespace, "restricted", "ada")

        # The step pods were admitted and ran as the non-root step account. The run ends
        # when its last output is written; the last pod may still be on its way out.
        def pods_done() -> list[Any] | None:
            pods = core.list_namespaced_pod(
                namespace, label_selector="kubehatch.dev/run=restricted"
            ).items
            return pods if all(p.status.phase == "Succeeded" for p in pods) else None

        pods = wait_for(pods_done, 60, "the step pods to finish")
        assert len(pods) == 2
        for pod in pods:
            assert pod.spec.service_account_name == "kubehatch-step"
        # A pod that breaks "restricted" is refused here: the namespace does enforce it.
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod(
                namespace,
                client.V1Pod(
                    metadata=client.V1ObjectMeta(name="root"),
                    spec=client.V1PodSpec(
                        containers=[
                            client.V1Container(name="c", image=images["KUBEHATCH_STEP_IMAGE"])
                        ]
                    ),
                ),
            )
        assert refused.value.status == 403 and "restricted" in refused.value.body
    finally:
        _tear_down(rel, namespace)


def _tear_down(rel: Release, namespace: str) -> None:
    """Print the operator's log, uninstall the release, and delete its namespace."""
    print(rel.operator_logs())
    subprocess.run(
        [rel.helm, "uninstall", rel.name, "-n", namespace, "--kubeconfig", rel.kubeconfig],
        capture_output=True,
        timeout=60,
    )
    client.CoreV1Api().delete_namespace(namespace, propagation_policy="Background")


def _as_worker(namespace: str, pod: str | None) -> client.CustomObjectsApi:
    """The API as the chart's worker account, bound (or not) to a pod of that name: the
    identity a worker pod's token carries (impersonated: the test is cluster-admin)."""
    api = client.ApiClient(client.Configuration.get_default_copy())
    api.set_default_header(
        "Impersonate-User", f"system:serviceaccount:{namespace}:kubehatch-worker"
    )
    if pod is not None:
        api.set_default_header("Impersonate-Extra-authentication.kubernetes.io%2fpod-name", pod)
    return client.CustomObjectsApi(api)


def test_a_pool_runs_under_the_chart_as_the_worker_account_within_its_policy(
    helm_bin: str, kubeconfig: str, images: dict[str, str]
) -> None:
    """The chart's worker account, its RBAC and its admission policy, with the operator
    in-cluster and restricted Pod Security: a run on a pool succeeds, and the policy
    refuses a claim from outside the pool or from no pod."""
    core, custom = client.CoreV1Api(), client.CustomObjectsApi()
    namespace = f"e2e-pool-{uuid.uuid4().hex[:6]}"
    labels = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels))
    )
    rel = Release(helm_bin, kubeconfig, namespace, namespace)
    image = images["KUBEHATCH_STEP_IMAGE"]
    try:
        rel.install(
            f"image.tag={images['KUBEHATCH_IMAGE_TAG']}", f"watchNamespaces={{{namespace}}}"
        )
        deployment_ready(rel)
        pool = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkerPool",
            "metadata": {"name": "fast"},
            "spec": {"image": image, "worker": WORKER, "replicas": 1},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "workerpools", pool)
        workflow = two_step_workflow(image)
        workflow["spec"]["pool"] = "fast"
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "workflows", workflow)
        run_to_success(namespace, "pooled", "ada")

        (worker,) = core.list_namespaced_pod(
            namespace, label_selector="kubehatch.dev/pool=fast"
        ).items
        assert worker.spec.service_account_name == "kubehatch-worker"
        listed = custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "workertasks", label_selector="kubehatch.dev/run=pooled"
        )["items"]
        assert {t["status"]["worker"] for t in listed} == {worker.metadata.name}
        assert {t["status"]["phase"] for t in listed} == {"Succeeded"}

        # A task of pool "fast", claimed by a worker of another pool, or by no pod at all.
        task = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkerTask",
            "metadata": {"name": "forged"},
            "spec": {"pool": "fast", "env": {}},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "workertasks", task)
        for pod, says in (
            ("slow-7d9f8c6b5-abcde", "a worker claims only its own pool's tasks"),
            (None, "only from a worker pod"),
        ):
            claim = {"status": {"phase": "Running", "worker": pod or "nobody"}}
            with pytest.raises(ApiException) as refused:
                _as_worker(namespace, pod).patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, "workertasks", "forged", claim
                )
            assert refused.value.status in (403, 422), refused.value.body
            assert says in refused.value.body or "not of 'fast'" in refused.value.body
    finally:
        _tear_down(rel, namespace)
