"""Isolation, as the chart enforces it on a real API server: RBAC and the admission policies.

- The step account may create ConfigMaps and nothing else; the operator has exactly its
  rights (no Secrets, status only through the status subresource).
- A Workflow may not name the operator's or the trigger's ServiceAccount (nor any account
  outside stepServiceAccount): refused when it is applied.
- A step pod may create its own output, `<job>-output`, and the parts of a large one,
  `<job>-output-<n>` (n up to the most parts an output has), owned by a WorkflowRun, and no
  other ConfigMap: not another run's output or input, not from a token bound to no pod.

The chart is installed with the operator scaled to 0 (only its accounts, RBAC and
policies are needed), in a namespace and under a release name of this module's own, and
watching only that namespace, so the policies never touch other tests' namespaces.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubehatch.api.outputs import MAX_PARTS
from tests.e2e.support import BASE_IMAGE, wait_for
from tests.e2e.test_chart import Release, helm_bin  # noqa: F401 - helm_bin is a fixture

pytestmark = pytest.mark.e2e

GROUP, VERSION = "kubehatch.dev", "v1alpha1"
STEP, TRIGGER, EXTRA = "kubehatch-step", "kubehatch-trigger", "iso-runner"
RUN = "iso-abc"
# A step attempt's Job, as the operator names them (at most 57 characters), so that its
# pod is `<job>-<5 characters>`; one short, one as long as a Job name gets.
JOBS = ("iso-abc-1-x1y2z", "iso-abc-a-very-long-step-name-that-fills-the-jobs-1-x1y2z")
assert len(JOBS[1]) == 57


@dataclass(frozen=True)
class Installed:
    namespace: str
    operator_account: str
    timings: dict[str, float]


@pytest.fixture(scope="module")
def installed(helm_bin: str, kubeconfig: str, crds: None) -> Iterator[Installed]:  # noqa: F811
    """The chart (no operator pod) in a namespace of its own; removed even on failure."""
    namespace = f"e2e-iso-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    release = Release(helm_bin, kubeconfig, namespace, namespace)
    try:
        started = time.monotonic()
        release.install(
            "replicaCount=0",
            f"watchNamespaces={{{namespace}}}",
            f"stepServiceAccount.allowed={{{EXTRA}}}",
        )
        enforced(namespace, release.fullname)
        installed = Installed(namespace, release.fullname, {"install": time.monotonic() - started})
        yield installed
        print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in installed.timings.items()))
    finally:
        subprocess.run(
            [helm_bin, "uninstall", namespace, "-n", namespace, "--kubeconfig", kubeconfig,
             "--wait", "--timeout", "60s"],
            capture_output=True, timeout=90,
        )  # fmt: skip
        core.delete_namespace(namespace, propagation_policy="Background")


def step_token_client(namespace: str) -> client.CoreV1Api:
    """The API as the step account, with a token from the TokenRequest API: bound to no pod."""
    token = (
        client.CoreV1Api()
        .create_namespaced_service_account_token(
            STEP,
            namespace,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
        )
        .status.token
    )
    configuration = client.Configuration.get_default_copy()
    configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.cert_file = configuration.key_file = None
    return client.CoreV1Api(client.ApiClient(configuration))


def enforced(namespace: str, operator_account: str) -> None:
    """Wait until the API server enforces both new policies (it learns of them by a watch).

    Probed with dry-run creates, which admission sees as real ones but which store nothing.
    """
    custom, as_step = client.CustomObjectsApi(), step_token_client(namespace)
    body = workflow("probe", operator_account)
    configmap = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="probe-output"))

    def refused(call: Any, *args: Any) -> bool:
        try:
            call(*args, dry_run="All")
        except ApiException as err:
            return err.status == 403 and "ValidatingAdmissionPolicy" in (err.body or "")
        return False

    wait_for(
        lambda: (
            refused(
                custom.create_namespaced_custom_object, GROUP, VERSION, namespace, "workflows", body
            )
            and refused(as_step.create_namespaced_config_map, namespace, configmap)
        ),
        30,
        "the admission policies to be enforced",
    )


# --- (a) RBAC -----------------------------------------------------------------------------------


def allowed(namespace: str, account: str, verb: str, resource: str) -> bool:
    """`kubectl auth can-i VERB RESOURCE -n NS --as=system:serviceaccount:NS:ACCOUNT`, with
    the account's groups too (--as-group): what the authorizer answers that account.

    ``resource`` is spelled as for kubectl: ``plural[.group][/subresource]``.
    """
    plural_group, _, subresource = resource.partition("/")
    plural, _, group = plural_group.partition(".")
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace}:{account}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                    "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=verb, group=group, resource=plural,
                subresource=subresource or None,
            ),
        )
    )  # fmt: skip
    result = client.AuthorizationV1Api().create_subject_access_review(review)
    return bool(result.status.allowed)


STEP_RIGHTS = {
    ("create", "configmaps"): True,
    ("get", "configmaps"): False,
    ("list", "configmaps"): False,
    ("watch", "configmaps"): False,
    ("update", "configmaps"): False,
    ("delete", "configmaps"): False,
    ("get", "secrets"): False,
    ("list", "secrets"): False,
    ("get", "pods"): False,
    ("list", "pods"): False,
    ("create", "pods"): False,
    ("create", "jobs.batch"): False,
    ("get", "workflowruns.kubehatch.dev"): False,
    ("list", "workflowruns.kubehatch.dev"): False,
    ("create", "workflowruns.kubehatch.dev"): False,
    ("get", "workflows.kubehatch.dev"): False,
}
TRIGGER_RIGHTS = {
    ("create", "workflowruns.kubehatch.dev"): True,
    ("get", "workflowruns.kubehatch.dev"): False,
    ("list", "workflows.kubehatch.dev"): False,
    ("create", "configmaps"): False,
    ("get", "secrets"): False,
}
OPERATOR_RIGHTS = {
    ("create", "jobs.batch"): True,
    ("delete", "jobs.batch"): True,
    ("get", "jobs.batch"): True,
    ("update", "jobs.batch"): False,
    ("create", "configmaps"): True,
    ("get", "configmaps"): True,
    # Step outputs as they appear (metadata only): the earliest sign a step succeeded.
    ("list", "configmaps"): True,
    ("watch", "configmaps"): True,
    ("update", "configmaps"): False,
    ("delete", "configmaps"): False,
    ("list", "pods"): True,
    ("watch", "pods"): True,
    ("create", "pods"): False,
    ("get", "secrets"): False,
    ("list", "secrets"): False,
    ("patch", "workflowruns.kubehatch.dev/status"): True,
    ("update", "workflowruns.kubehatch.dev/finalizers"): True,
    ("update", "workflows.kubehatch.dev/finalizers"): True,
    # To cancel child runs (spec.cancel) and clear a carried-out retry's label.
    ("patch", "workflowruns.kubehatch.dev"): True,
    ("update", "workflows.kubehatch.dev"): False,
    ("patch", "events"): False,
    ("create", "events"): True,
    ("list", "events"): True,
    ("create", "events.events.k8s.io"): False,
}


def test_each_account_has_exactly_its_rights(installed: Installed) -> None:
    started = time.monotonic()
    ns = installed.namespace
    found, expected = {}, {}
    for account, table in (
        (STEP, STEP_RIGHTS),
        (TRIGGER, TRIGGER_RIGHTS),
        (installed.operator_account, OPERATOR_RIGHTS),
    ):
        for (verb, resource), want in table.items():
            expected[(account, verb, resource)] = want
            found[(account, verb, resource)] = allowed(ns, account, verb, resource)
    assert found == expected
    installed.timings["rights"] = time.monotonic() - started


# --- (b) a Workflow names only a step account ---------------------------------------------


def workflow(name: str, account: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": BASE_IMAGE, "steps": [{"name": "a", "action": "iso:a"}]}
    if account is not None:
        spec["serviceAccountName"] = account
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": spec,
    }


def refusal(call: Any, *args: Any) -> str:
    with pytest.raises(ApiException) as refused:
        call(*args)
    assert refused.value.status == 403, refused.value.body
    return str(json.loads(refused.value.body)["message"])


def test_workflow_naming_the_operator_or_trigger_account_is_refused(installed: Installed) -> None:
    started = time.monotonic()
    ns, custom = installed.namespace, client.CustomObjectsApi()

    def create(body: dict[str, Any]) -> Any:
        return custom.create_namespaced_custom_object(GROUP, VERSION, ns, "workflows", body)

    hint = f"use one of: {STEP}, {EXTRA} (chart value stepServiceAccount.allowed)"
    for account in (installed.operator_account, TRIGGER, "default"):
        message = refusal(create, workflow("takeover", account))
        assert (
            f"Workflow 'takeover': spec.serviceAccountName: ServiceAccount '{account}' "
            f"may not run steps; {hint}"
        ) in message
    # The default account, the step account and an allowed extra one are admitted.
    for name, account in (("plain", None), ("step", STEP), ("extra", EXTRA)):
        create(workflow(name, account))
    # Changing an admitted Workflow to the operator's account is refused just the same.
    patch = {"spec": {"serviceAccountName": installed.operator_account}}
    message = refusal(
        custom.patch_namespaced_custom_object, GROUP, VERSION, ns, "workflows", "step", patch
    )
    assert f"ServiceAccount '{installed.operator_account}' may not run steps" in message
    installed.timings["workflows"] = time.monotonic() - started


# --- (c) a step pod creates its own output and nothing else ---------------------------------

PROBE = textwrap.dedent(
    """
    import json, os, ssl, urllib.error, urllib.request
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    ns = open(sa + "/namespace").read()
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
    owner = json.loads(os.environ["OWNER"])
    results = {}
    for label, name, owned in json.loads(os.environ["ATTEMPTS"]):
        meta = {"name": name, **({"ownerReferences": [owner]} if owned else {})}
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}
        request = urllib.request.Request(
            f"https://{host}:{port}/api/v1/namespaces/{ns}/configmaps", method="POST",
            data=json.dumps(body).encode(),
            headers={"Authorization": "Bearer " + open(sa + "/token").read(),
                     "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, context=ctx, timeout=10)
            results[label] = [201, ""]
        except urllib.error.HTTPError as err:
            results[label] = [err.code, json.load(err).get("message", "")]
    print(json.dumps(results))
    """
)


def attempts(job: str) -> list[tuple[str, str, bool]]:
    """(label, ConfigMap name, owned by the run) in the order the pod tries them."""
    return [
        ("own output, no owner", f"{job}-output", False),
        ("another run's output", "iso-other-a-1-x9y8z-output", True),
        ("its run's input", f"{RUN}-input", True),
        ("a name its Job's is a prefix of", f"{job}-2-output", True),
        ("a part of its own output", f"{job}-output-1", True),
        ("its last possible part", f"{job}-output-{MAX_PARTS}", True),
        ("a part past the last", f"{job}-output-{MAX_PARTS + 1}", True),
        ("not a part's number", f"{job}-output-01", True),
        ("own output", f"{job}-output", True),
    ]


def step_job(job: str, owner: dict[str, Any]) -> client.V1Job:
    env = {"OWNER": json.dumps(owner), "ATTEMPTS": json.dumps(attempts(job))}
    container = client.V1Container(
        name="step",
        image=BASE_IMAGE,
        image_pull_policy="IfNotPresent",
        command=["python3", "-c", PROBE],
        env=[client.V1EnvVar(name=k, value=v) for k, v in env.items()],
    )
    pod = client.V1PodSpec(
        restart_policy="Never", service_account_name=STEP, containers=[container]
    )
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=job),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(spec=pod)),
    )


def probe_results(namespace: str, job: str) -> tuple[str, dict[str, list[Any]]]:
    """The pod's name and what each of its creates answered."""
    batch, core = client.BatchV1Api(), client.CoreV1Api()

    def finished() -> bool:
        status = batch.read_namespaced_job_status(job, namespace).status
        return bool(status.succeeded or status.failed)

    wait_for(finished, 120, f"Job {job} to finish")
    (pod,) = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    log = core.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert pod.status.phase == "Succeeded", log
    return pod.metadata.name, json.loads(log.strip().splitlines()[-1])


def test_step_pod_creates_its_own_output_and_nothing_else(installed: Installed) -> None:
    started = time.monotonic()
    ns, custom, core = installed.namespace, client.CustomObjectsApi(), client.CoreV1Api()
    custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, "workflows", workflow("iso-owner", None)
    )
    run = custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, "workflowruns",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowRun", "metadata": {"name": RUN},
         "spec": {"workflowRef": {"name": "iso-owner"}}},
    )  # fmt: skip
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "name": RUN,
        "uid": run["metadata"]["uid"],
    }
    for job in JOBS:
        client.BatchV1Api().create_namespaced_job(ns, step_job(job, owner))
    policy = f"ValidatingAdmissionPolicy '{installed.operator_account}-step-outputs'"
    for job in JOBS:
        pod, results = probe_results(ns, job)
        assert pod.startswith(f"{job}-") and len(pod) == len(job) + 6
        codes = {label: code for label, (code, _) in results.items()}
        assert codes == {
            "own output, no owner": 403,
            "another run's output": 403,
            "its run's input": 403,
            "a name its Job's is a prefix of": 403,
            "a part of its own output": 201,
            "its last possible part": 201,
            "a part past the last": 403,
            "not a part's number": 403,
            "own output": 201,
        }, results
        for code, message in results.values():
            assert code != 403 or policy in message, message
        no_owner = results["own output, no owner"][1]
        assert (
            "metadata.ownerReferences: a step's output must be owned by its WorkflowRun" in no_owner
        )
        assert (
            f"ConfigMap 'iso-other-a-1-x9y8z-output': metadata.name: pod '{pod}' may create "
            f"only its own output, ConfigMap '{job}-output'"
        ) in results["another run's output"][1]
        assert (
            f"may create only its own output, ConfigMap '{job}-output' (and the parts of a "
            f"large output, '{job}-output-1' to '-{MAX_PARTS}')"
        ) in results["a part past the last"][1]
        made = core.read_namespaced_config_map(f"{job}-output", ns)
        assert made.metadata.owner_references[0].uid == owner["uid"]
    names = {cm.metadata.name for cm in core.list_namespaced_config_map(ns).items}
    assert f"{RUN}-input" not in names and "iso-other-a-1-x9y8z-output" not in names
    installed.timings["step pods"] = time.monotonic() - started


def test_step_account_token_bound_to_no_pod_creates_nothing(installed: Installed) -> None:
    """A token from the TokenRequest API alone (not a pod's) names no pod: refused."""
    ns, core = installed.namespace, client.CoreV1Api()
    as_step = step_token_client(ns)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="iso-unbound-output"))
    message = refusal(as_step.create_namespaced_config_map, ns, body)
    assert (
        f"ConfigMap 'iso-unbound-output': system:serviceaccount:{ns}:{STEP} may create "
        "ConfigMaps only from a step pod"
    ) in message
    # Anyone else (here: the test's own user) is not concerned by the policy.
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="iso-by-admin"))
    )
