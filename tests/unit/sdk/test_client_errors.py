"""The client's failures, without a cluster: one line saying what failed and what to do.

``FakeCluster`` answers at the HTTP layer (it stands in for the kubernetes client's REST
client), so the real CustomObjectsApi and CoreV1Api build the requests and raise the
real exceptions, from the bodies a v1.34 API server sends (captured from one).
The CLI tests (test_cli_errors.py) use it too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client as k8s
from kubernetes.client import rest
from kubernetes.client.exceptions import ApiException
from urllib3.connection import HTTPSConnection
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

import kubehatch.client as client_module
from kubehatch.api import wire
from kubehatch.client import MAX_INPUT_BYTES, ApiError, Client, PodLog, explain
from kubehatch.errors import KubehatchError

HOST = "https://cluster.example:6443"
NS = "team"
CUSTOM = f"/apis/{wire.GROUP}/{wire.VERSION}/namespaces/"
VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}


def status(code: int, reason: str, message: str, **details: Any) -> tuple[int, Any]:
    """A Status object as the API server sends it with an error."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details, "code": code}  # fmt: skip
    return code, body


def run_body(name: str, phase: str | None = None, **status_fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": wire.API_VERSION, "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"},
        "spec": {"workflowRef": {"name": "wf"}},
    }  # fmt: skip
    if phase:
        body["status"] = {"phase": phase, **status_fields}
    return body


def pod_body(
    name: str, step: str, phase: str, *, waiting: tuple[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A step pod: labelled as the operator's are, with the job-name label Jobs add."""
    job = name.rsplit("-", 1)[0]
    labels = {wire.LABEL_RUN: "r1", wire.LABEL_STEP: step, "job-name": job}
    state = {"waiting": {"reason": waiting[0], "message": waiting[1]}} if waiting else {
        "terminated": {"exitCode": 0}} if phase == "Succeeded" else {"running": {}}  # fmt: skip
    container = {"name": "step", "image": "img:1", "imageID": "", "ready": False,
                 "restartCount": 0, "state": state}  # fmt: skip
    return {
        "metadata": {"name": name, "labels": labels,
                     "creationTimestamp": extra.pop("created", "2026-01-01T00:00:00Z")},
        "status": {"phase": phase, "containerStatuses": [container], **extra},
    }  # fmt: skip


class FakeCluster:
    """An API server in memory: custom objects, pods and their logs, RBAC refusals."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, str] = {}
        self.forbidden: set[tuple[str, str]] = set()  # (verb, resource)
        self.answers: dict[tuple[str, str], tuple[int, Any]] = {}  # (verb, resource): answer
        self.crds = True
        self.reachable = True
        self.requests: list[tuple[str, str]] = []

    def api_client(self) -> k8s.ApiClient:
        api = k8s.ApiClient(k8s.Configuration(host=HOST))
        api.rest_client.request = self.request  # type: ignore[method-assign]
        return api

    def client(self) -> Client:
        return Client(NS, api_client=self.api_client())

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    # --- HTTP ---------------------------------------------------------------------------
    def request(self, method: str, url: str, body: Any = None, **_: Any) -> rest.RESTResponse:
        parts = urlsplit(url)
        self.requests.append((method, parts.path))
        if not self.reachable:
            reason = NewConnectionError(
                HTTPSConnection("cluster.example", 6443),
                "Failed to establish a new connection: [Errno 111] Connection refused",
            )
            raise MaxRetryError(None, parts.path, reason)  # type: ignore[arg-type]
        code, answer = self.answer(method, parts.path, parse_qs(parts.query), body)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        kind = "text/plain" if isinstance(answer, str) else "application/json"
        response = SimpleNamespace(
            status=code, reason={200: "OK", 201: "Created"}.get(code, "Error"),
            data=text.encode(), headers={"content-type": kind},
        )  # fmt: skip
        return rest.RESTResponse(response)

    def answer(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        verb = VERBS[method]
        if path.startswith(CUSTOM):
            namespace, plural, *rest_of = path.removeprefix(CUSTOM).split("/")
            name = rest_of[0] if rest_of else None
            resource = plural
        else:  # /api/v1/namespaces/NS/pods[/NAME[/log]]
            namespace, plural, *rest_of = path.removeprefix("/api/v1/namespaces/").split("/")
            name = rest_of[0] if rest_of else None
            resource = "pods/log" if rest_of[1:] == ["log"] else "pods"
        if method == "GET" and name is None:
            verb = "list"
        if not self.crds and path.startswith(CUSTOM):
            return 404, "404 page not found\n"
        if (verb, resource) in self.forbidden:
            what = f'{resource}.{wire.GROUP} "{name}"' if name else resource
            return status(
                403, "Forbidden",
                f'{what} is forbidden: User "ada" cannot {verb} resource "{resource}" in API '
                f'group "{wire.GROUP}" in the namespace "{namespace}"',
                kind=resource, **({"name": name} if name else {}),
            )  # fmt: skip
        if (verb, resource) in self.answers:
            return self.answers[verb, resource]
        if resource == "pods":
            return 200, self.list_pods(query)
        if resource == "pods/log":
            return self.read_log(str(name))
        key = (plural, str(name))
        if verb == "create":
            name = body["metadata"].get("name") or body["metadata"]["generateName"] + "x7k2p"
            if (plural, name) in self.objects:
                return status(409, "AlreadyExists", f'{plural} "{name}" already exists',
                              name=name, group=wire.GROUP, kind=plural)  # fmt: skip
            body = {**body, "metadata": {**body["metadata"], "name": name}}
            self.objects[plural, name] = body
            return 201, body
        if verb == "list":
            return 200, {"items": [o for (p, _), o in self.objects.items() if p == plural]}
        if key not in self.objects:
            return status(404, "NotFound", f'{plural}.{wire.GROUP} "{name}" not found',
                          name=name, group=wire.GROUP, kind=plural)  # fmt: skip
        if verb == "patch":
            self.objects[key]["spec"].update(body.get("spec", {}))
        return 200, self.objects[key]

    def list_pods(self, query: dict[str, list[str]]) -> dict[str, Any]:
        wanted = dict(term.split("=") for term in query["labelSelector"][0].split(","))
        return {
            "items": [
                pod for pod in self.pods.values()
                if all(pod["metadata"]["labels"].get(k) == v for k, v in wanted.items())
            ]
        }  # fmt: skip

    def read_log(self, name: str) -> tuple[int, Any]:
        if name not in self.pods:
            return status(404, "NotFound", f'pods "{name}" not found', name=name, kind="pods")
        waiting = self.pods[name]["status"]["containerStatuses"][0]["state"].get("waiting")
        if waiting:  # what the API server answers for a container that has not started
            return status(
                400, "BadRequest",
                f'container "step" in pod "{name}" is waiting to start: {waiting["reason"]}',
            )  # fmt: skip
        return 200, self.logs.get(name, "")


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCluster]:
    """A fake cluster, also what ``Client()`` (and so the CLI) connects to."""
    fake = FakeCluster()
    monkeypatch.setattr(client_module, "_load_config", lambda: (fake.api_client(), NS))
    yield fake


# --- API errors, one line each ----------------------------------------------------------------


def test_a_missing_run_is_named_with_its_namespace_and_how_to_list_runs(
    cluster: FakeCluster,
) -> None:
    with pytest.raises(ApiError) as err:
        cluster.client().get_run("r1")
    assert str(err.value) == (
        "workflowrun 'r1' not found in namespace 'team'; "
        "kubectl get workflowruns -n team lists them"
    )
    assert err.value.status == 404


def test_forbidden_says_which_verb_and_how_to_check(cluster: FakeCluster) -> None:
    cluster.forbidden.add(("patch", "workflowruns"))
    with pytest.raises(ApiError) as err:
        cluster.client().cancel("r1")
    assert str(err.value) == (
        "forbidden: you may not patch workflowruns in namespace 'team' "
        "(kubectl auth can-i patch workflowruns -n team)"
    )


def test_a_cluster_without_the_crds_says_to_install_the_chart(cluster: FakeCluster) -> None:
    cluster.crds = False
    for call in (lambda c: c.list_runs(), lambda c: c.get_run("r1"), lambda c: c.run("wf")):
        with pytest.raises(
            ApiError, match=r"^the cluster has no kubehatch CRDs: install the chart"
        ):
            call(cluster.client())


def test_a_cluster_that_does_not_answer_names_its_address(cluster: FakeCluster) -> None:
    cluster.reachable = False
    with pytest.raises(ApiError) as err:
        cluster.client().list_runs()
    assert str(err.value) == (
        f"cannot reach the cluster at {HOST}: Failed to establish a new connection: "
        "[Errno 111] Connection refused; check KUBECONFIG"
    )
    assert err.value.status is None


def test_a_name_that_does_not_resolve_reads_well() -> None:
    conn = HTTPSConnection("nowhere.invalid", 6443)
    reason = NameResolutionError("nowhere.invalid", conn, OSError(-2, "Name or service not known"))
    text = str(explain(MaxRetryError(None, "/apis", reason), "get", "pods", None, NS, HOST))  # type: ignore[arg-type]
    assert text.startswith(f"cannot reach the cluster at {HOST}: Failed to resolve")
    assert "Name or service not known" in text and text.endswith("; check KUBECONFIG")
    assert "object at 0x" not in text and "\n" not in text


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (status(401, "Unauthorized", "Unauthorized"),
         f"the cluster at {HOST} refused your credentials (Unauthorized); check KUBECONFIG"),
        (status(500, "InternalError", "etcdserver: request timed out"),
         "cannot list workflowruns in namespace 'team': the API server answered 500 "
         "etcdserver: request timed out"),
        (status(429, "TooManyRequests", "too many requests,\n please try again later"),
         "cannot list workflowruns in namespace 'team': the API server answered 429 too many "
         "requests, please try again later"),
        ((502, "<html>\n<body>Bad Gateway</body>\n</html>"),
         "cannot list workflowruns in namespace 'team': the API server answered 502 <html> "
         "<body>Bad Gateway</body> </html>"),
    ],
)  # fmt: skip
def test_other_answers_are_one_line(
    cluster: FakeCluster, answer: tuple[int, Any], expected: str
) -> None:
    cluster.answers["list", "workflowruns"] = answer
    with pytest.raises(ApiError) as err:
        cluster.client().list_runs()
    assert str(err.value) == expected
    assert err.value.status == answer[0]


def test_a_name_taken_says_so(cluster: FakeCluster) -> None:
    cluster.objects["workflows", "wf"] = {"metadata": {"name": "wf"}}
    api = cluster.client()
    api.run("wf", name="r1")
    with pytest.raises(ApiError, match=r"^workflowrun 'r1' already exists in namespace 'team'; "):
        api.run("wf", name="r1")


def test_a_missing_namespace_says_so(cluster: FakeCluster) -> None:
    cluster.answers["create", "workflowevents"] = status(
        404, "NotFound", 'namespaces "team" not found', name="team", kind="namespaces"
    )
    with pytest.raises(ApiError, match=r"^namespace 'team' does not exist$"):
        cluster.client().event.push("user:created")


# --- runs of workflows that do not exist ------------------------------------------------------


def test_a_run_of_a_missing_workflow_is_refused_and_nothing_is_created(
    cluster: FakeCluster,
) -> None:
    with pytest.raises(ApiError) as err:
        cluster.client().run("nope", {"a": 1})
    assert str(err.value) == (
        "workflow 'nope' does not exist in namespace 'team'; "
        "kubectl get workflows -n team lists them"
    )
    assert cluster.writes() == []


def test_a_run_is_created_when_rbac_hides_the_workflows(cluster: FakeCluster) -> None:
    cluster.forbidden.add(("get", "workflows"))
    name = cluster.client().run("wf", {"a": 1}, name="r1")
    assert name == "r1"
    assert cluster.writes() == [("POST", f"{CUSTOM}team/workflowruns")]


def test_a_run_of_an_existing_workflow_is_created(cluster: FakeCluster) -> None:
    cluster.objects["workflows", "wf"] = {"metadata": {"name": "wf"}}
    cluster.client().run("wf", {"a": 1}, name="r1")
    assert cluster.objects["workflowruns", "r1"]["spec"]["input"] == {"a": 1}


def test_an_event_needs_no_workflow(cluster: FakeCluster) -> None:
    assert cluster.client().event.push("user:created", {"a": 1}) == "event-x7k2p"
    assert [r for r in cluster.requests if "workflows/" in r[1]] == []


# --- input size ----------------------------------------------------------------------------


def _payload(size: int) -> dict[str, str]:
    """An input whose json.dumps (the operator's encoding) is exactly ``size`` bytes."""
    overhead = len(json.dumps({"blob": ""}))
    return {"blob": "x" * (size - overhead)}


def test_the_input_limit_fits_a_configmap_with_a_margin() -> None:
    assert 900 * 1024 < MAX_INPUT_BYTES < 1024 * 1024


def test_an_input_at_the_limit_is_accepted(cluster: FakeCluster) -> None:
    cluster.objects["workflows", "wf"] = {"metadata": {"name": "wf"}}
    payload = _payload(MAX_INPUT_BYTES)
    assert len(json.dumps(payload)) == MAX_INPUT_BYTES
    cluster.client().run("wf", payload, name="r1")
    cluster.client().event.push("k", payload)


@pytest.mark.parametrize("how", ["run", "schedule", "event"])
def test_an_input_over_the_limit_is_refused_before_any_request(
    cluster: FakeCluster, how: str
) -> None:
    from datetime import UTC, datetime

    api = cluster.client()
    payload = _payload(MAX_INPUT_BYTES + 1)
    with pytest.raises(KubehatchError) as err:
        if how == "run":
            api.run("wf", payload)
        elif how == "schedule":
            api.run("wf", payload, scheduled_at=datetime(2030, 1, 1, tzinfo=UTC))
        else:
            api.event.push("k", payload)
    text = str(err.value)
    assert f"{MAX_INPUT_BYTES + 1} bytes" in text and f"limit of {MAX_INPUT_BYTES} bytes" in text
    assert "pass a reference to the data instead: an object-storage URL, a PVC path" in text
    assert "\n" not in text
    assert cluster.requests == []


def test_the_size_is_the_operators_encoding_of_the_input(cluster: FakeCluster) -> None:
    """json.dumps escapes non-ASCII: "é" takes six bytes in the ConfigMap, not two."""
    cluster.objects["workflows", "wf"] = {"metadata": {"name": "wf"}}
    accented = {"blob": "é" * (MAX_INPUT_BYTES // 6)}
    with pytest.raises(KubehatchError, match="over the limit"):
        cluster.client().run("wf", accented)


# --- logs -------------------------------------------------------------------------------------


def test_logs_of_pods_that_have_not_started_say_why(cluster: FakeCluster) -> None:
    pull = ("ErrImagePull", 'failed to pull image "nope:1": not found')
    cluster.pods = {
        "r1-a-1-x": pod_body("r1-a-1-x", "a", "Succeeded", created="2026-01-01T00:00:01Z"),
        "r1-b-1-x": pod_body("r1-b-1-x", "b", "Pending", waiting=pull,
                             created="2026-01-01T00:00:02Z"),
        "r1-c-1-x": pod_body("r1-c-1-x", "c", "Pending", created="2026-01-01T00:00:03Z",
                             conditions=[{"type": "PodScheduled", "status": "False",
                                          "reason": "Unschedulable",
                                          "message": "0/1 nodes are available:\n  taints"}]),
        "r1-d-1-x": pod_body("r1-d-1-x", "d", "Pending", created="2026-01-01T00:00:04Z",
                             waiting=("ContainerCreating", "")),
    }  # fmt: skip
    cluster.pods["r1-c-1-x"]["status"].pop("containerStatuses")
    cluster.logs["r1-a-1-x"] = "hello\n"
    pods = cluster.client().pod_logs("r1")
    assert pods == [
        PodLog("r1-a-1", "r1-a-1-x", "Succeeded", None, "hello\n"),
        PodLog("r1-b-1", "r1-b-1-x", "Pending",
               'ErrImagePull: failed to pull image "nope:1": not found', ""),
        PodLog("r1-c-1", "r1-c-1-x", "Pending",
               "Unschedulable: 0/1 nodes are available: taints", ""),
        PodLog("r1-d-1", "r1-d-1-x", "Pending", "ContainerCreating", ""),
    ]  # fmt: skip
    log_reads = [path for _, path in cluster.requests if path.endswith("/log")]
    assert log_reads == ["/api/v1/namespaces/team/pods/r1-a-1-x/log"]
    assert cluster.client().logs("r1", "a") == {"r1-a-1": "hello\n"}


def test_a_log_that_cannot_be_read_is_said_in_place(cluster: FakeCluster) -> None:
    """A pod that started between the list and the read, or was deleted meanwhile."""
    cluster.pods = {"r1-a-1-x": pod_body("r1-a-1-x", "a", "Running")}
    cluster.answers["get", "pods/log"] = status(
        400, "BadRequest", 'container "step" in pod "r1-a-1-x" is waiting to start'
    )
    [pod] = cluster.client().pod_logs("r1")
    assert pod.log == '(no log: container "step" in pod "r1-a-1-x" is waiting to start)'


def test_logs_of_steps_on_a_pool_are_their_lines_of_their_workers_log(
    cluster: FakeCluster,
) -> None:
    def task(name: str, created: str, **status: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"pool": "fast"},
            **({"status": status} if status else {}),
        }

    cluster.objects["workertasks", "r1-b-1"] = task(
        "r1-b-1", "2026-01-01T00:00:02Z", phase="Succeeded", worker="fast-1-x"
    )
    cluster.objects["workertasks", "r1-c-1"] = task("r1-c-1", "2026-01-01T00:00:03Z")
    cluster.objects["workertasks", "r1-d-1"] = task(
        "r1-d-1", "2026-01-01T00:00:04Z", phase="Running", worker="laptop-42"
    )
    cluster.pods = {
        "r1-a-1-x": pod_body("r1-a-1-x", "a", "Succeeded", created="2026-01-01T00:00:01Z"),
        "fast-1-x": pod_body("fast-1-x", "none", "Running"),
    }
    cluster.pods["fast-1-x"]["metadata"]["labels"] = {"kubehatch.dev/pool": "fast"}
    cluster.logs["fast-1-x"] = (
        "kubehatch worker: claimed r1-b-1\n[r1-b-1] hello from b\n[r1-x-1] another step\n"
        "[r1-b-1] step b succeeded\n"
    )
    logs = cluster.client().pod_logs("r1")
    assert [(p.job, p.pod, p.phase) for p in logs] == [
        ("r1-a-1", "r1-a-1-x", "Succeeded"),
        ("r1-b-1", "fast-1-x", "Succeeded"),
        ("r1-c-1", "", "Pending"),
        ("r1-d-1", "laptop-42", "Running"),
    ]
    assert logs[1].log == "hello from b\nstep b succeeded\n"
    assert logs[2].waiting == "not claimed yet by a worker of WorkerPool 'fast'"
    assert logs[3].log.startswith("(no log of worker: ")  # a worker on a laptop: no pod


def test_logs_forbidden_stop_with_one_line(cluster: FakeCluster) -> None:
    cluster.pods = {"r1-a-1-x": pod_body("r1-a-1-x", "a", "Running")}
    cluster.forbidden.add(("get", "pods/log"))
    with pytest.raises(ApiError, match=r"^forbidden: you may not get pods/log in namespace"):
        cluster.client().pod_logs("r1")


# --- watching -----------------------------------------------------------------------------------


def test_an_expired_watch_reads_the_run_again(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import watch

    cluster.objects["workflowruns", "r1"] = run_body("r1", "Running")

    def expired(self: object, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        cluster.objects["workflowruns", "r1"] = run_body("r1", "Succeeded")
        raise ApiException(status=410, reason="Expired: too old resource version")
        yield {}  # a generator, as Watch.stream is

    monkeypatch.setattr(watch.Watch, "stream", expired)
    final = cluster.client().wait("r1", timeout=5)
    assert final.status is not None and final.status.phase == "Succeeded"


def test_a_watch_cut_off_says_the_cluster_is_unreachable(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import watch
    from urllib3.exceptions import ProtocolError

    cluster.objects["workflowruns", "r1"] = run_body("r1", "Running")

    def cut(self: object, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        raise ProtocolError("Connection broken: IncompleteRead(0 bytes read)")
        yield {}

    monkeypatch.setattr(watch.Watch, "stream", cut)
    with pytest.raises(ApiError, match=f"^cannot reach the cluster at {HOST}: Connection broken"):
        cluster.client().wait("r1", timeout=5)


def test_a_kubeconfig_that_cannot_be_loaded_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "")
    with pytest.raises(KubehatchError, match=r"^no cluster to talk to \(.*\); set KUBECONFIG$"):
        Client()
