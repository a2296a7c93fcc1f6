"""The cluster itself: a Ready node, real containers, in-cluster API access, exit codes.

These pin down what every other e2e test relies on, on whichever cluster runs them.
"""

from __future__ import annotations

import textwrap

import pytest
from kubernetes import client

from tests.e2e.support import BASE_IMAGE, pinned_kubernetes_version, wait_for

pytestmark = pytest.mark.e2e


def _pod(name: str, script: str, **spec: object) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name="main",
                    image=BASE_IMAGE,
                    image_pull_policy="IfNotPresent",
                    command=["python3", "-c", textwrap.dedent(script)],
                )
            ],
            **spec,
        ),
    )


def _finished_pod(namespace: str, name: str, timeout: float = 90) -> client.V1Pod:
    core = client.CoreV1Api()

    def done() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    return wait_for(done, timeout, f"pod {namespace}/{name} to finish")


def test_node_is_ready_at_the_pinned_version(kubeconfig: str) -> None:
    nodes = client.CoreV1Api().list_node().items
    assert len(nodes) >= 1
    node = nodes[0]
    ready = {c.type: c.status for c in node.status.conditions}["Ready"]
    assert ready == "True"
    server = client.VersionApi().get_code().git_version
    assert node.status.node_info.kubelet_version == server
    if "kubehatch-cluster" in kubeconfig:  # the local cluster runs the pinned build
        assert server == pinned_kubernetes_version()


def test_job_runs_a_harness_built_image_and_logs_its_output(namespace: str) -> None:
    batch, core = client.BatchV1Api(), client.CoreV1Api()
    pod = _pod("unused", "print('hello from a step image', 6 * 7)")
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="hello"),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(spec=pod.spec)),
    )
    batch.create_namespaced_job(namespace, job)
    wait_for(
        lambda: (batch.read_namespaced_job_status("hello", namespace).status.succeeded or 0) >= 1,
        90,
        "job hello to succeed",
    )
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=hello").items
    assert len(pods) == 1
    assert core.read_namespaced_pod_log(pods[0].metadata.name, namespace).strip() == (
        "hello from a step image 42"
    )


def test_pod_lists_configmaps_through_the_kubernetes_service(namespace: str) -> None:
    core, rbac = client.CoreV1Api(), client.RbacAuthorizationV1Api()
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="marker"))
    )
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="lister"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="list-configmaps"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="lister"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="list-configmaps"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="lister", namespace=namespace)
            ],
        ),
    )
    # The in-cluster configuration, by hand: service env vars, projected token, CA bundle.
    script = """
        import json, os, ssl, urllib.request
        sa = "/var/run/secrets/kubernetes.io/serviceaccount"
        ns = open(sa + "/namespace").read()
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        req = urllib.request.Request(
            f"https://{host}:{port}/api/v1/namespaces/{ns}/configmaps",
            headers={"Authorization": "Bearer " + open(sa + "/token").read()},
        )
        ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
        items = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["items"]
        print(" ".join(sorted(i["metadata"]["name"] for i in items)))
    """
    core.create_namespaced_pod(namespace, _pod("lister", script, service_account_name="lister"))
    pod = _finished_pod(namespace, "lister")
    log = core.read_namespaced_pod_log("lister", namespace)
    assert pod.status.phase == "Succeeded", log
    assert "marker" in log.split()
    assert "kube-root-ca.crt" in log.split()


def test_failing_container_reports_exit_code_and_termination_message(namespace: str) -> None:
    script = """
        import sys
        open("/dev/termination-log", "w").write("step exploded: ValueError('bad input')")
        sys.exit(3)
    """
    client.CoreV1Api().create_namespaced_pod(namespace, _pod("failing", script))
    pod = _finished_pod(namespace, "failing")
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 3
    assert terminated.message == "step exploded: ValueError('bad input')"
