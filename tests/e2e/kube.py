"""Small Kubernetes helpers for e2e tests: CRDs, RBAC, runs and their status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import wait_for

GROUP, VERSION = "kubehatch.dev", "v1alpha1"


def apply_crds(directory: Path) -> None:
    api = client.ApiextensionsV1Api()
    names = []
    for path in sorted(directory.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        names.append(body["metadata"]["name"])
        try:
            api.create_custom_resource_definition(body)
        except ApiException as err:
            if err.status != 409:
                raise
            current = api.read_custom_resource_definition(body["metadata"]["name"])
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            api.replace_custom_resource_definition(body["metadata"]["name"], body)

    def established() -> bool:
        for name in names:
            conditions = api.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    wait_for(established, 30, "the CRDs to be Established")


def create_step_service_account(namespace: str) -> None:
    """What the chart installs in each namespace: a step SA that may only create ConfigMaps."""
    rule = client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["create"])
    _service_account(namespace, "kubehatch-step", [rule])


def create_worker_service_account(namespace: str) -> None:
    """What the chart installs in each namespace for WorkerPool pods: an account that may
    read WorkerTasks and write their status, nothing else."""
    _service_account(
        namespace,
        "kubehatch-worker",
        [
            client.V1PolicyRule(
                api_groups=[GROUP], resources=["workertasks"], verbs=["get", "list", "watch"]
            ),
            client.V1PolicyRule(
                api_groups=[GROUP], resources=["workertasks/status"], verbs=["get", "patch"]
            ),
        ],
    )


def _service_account(namespace: str, name: str, rules: list[client.V1PolicyRule]) -> None:
    """A ServiceAccount with a Role of exactly ``rules``, bound to it."""
    core, rbac = client.CoreV1Api(), client.RbacAuthorizationV1Api()
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    rbac.create_namespaced_role(
        namespace, client.V1Role(metadata=client.V1ObjectMeta(name=name), rules=rules)
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=name
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        ),
    )


def apply_workflow(namespace: str, manifest: dict[str, Any], image: str) -> None:
    body = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
    body["spec"] = {**body["spec"], "image": image}
    client.CustomObjectsApi().create_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", body
    )


def create_run(
    namespace: str, name: str, workflow: str, input: dict[str, Any] | None = None
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": workflow}, "input": input or {}},
    }
    client.CustomObjectsApi().create_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflowruns", body
    )


def get_run(namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi().get_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflowruns", name
    )


def wait_for_phase(
    namespace: str, name: str, phases: set[str], timeout: float = 120
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = get_run(namespace, name)
        return run if (run.get("status") or {}).get("phase") in phases else None

    try:
        return wait_for(done, timeout, f"run {namespace}/{name} to reach {sorted(phases)}")
    except AssertionError as err:
        status = get_run(namespace, name).get("status") or {}
        status.pop("workflowSpec", None)
        raise AssertionError(f"{err}; status: {status}") from None


def output(namespace: str, configmap: str) -> Any:
    import json

    data = client.CoreV1Api().read_namespaced_config_map(configmap, namespace).data
    return json.loads(data["output.json"])


def attempts_of(namespace: str, run: str) -> list[tuple[str, str]]:
    """(step, attempt) of every Job of the run, sorted: one Job per attempt, no more."""
    labels = [j.metadata.labels or {} for j in jobs_of(namespace, run)]
    return sorted((lb["kubehatch.dev/step"], lb["kubehatch.dev/attempt"]) for lb in labels)


def jobs_of(namespace: str, run: str) -> list[client.V1Job]:
    return (
        client.BatchV1Api()
        .list_namespaced_job(namespace, label_selector=f"kubehatch.dev/run={run}")
        .items
    )
