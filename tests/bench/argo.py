"""Argo Workflows as a benchmark peer: never shipped, never in the chart, local cluster only.

`hack/peers/build-peers.sh argo` builds the workflow-controller (a host process here, like
the operator in `make bench`) and the argoexec image; `ArgoPeer.install` applies Argo's CRDs
from the Go module cache (`stop` deletes them), least-privilege executor RBAC and
`SETTINGS`. Timings are receive times on this machine's watches. Argo re-queues a
Workflow DEFAULT_REQUEUE_TIME (10 s) after a pod event, so the smoke run measures that
default and 1 s (its source's lower bound):
    python -m tests.bench.argo [--requeue 10s,1s]   # JSON on stdout; detail in _output/bench/
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import BASE_IMAGE, REPO_ROOT, wait_for

GROUP, VERSION = "argoproj.io", "v1alpha1"
PINS = (REPO_ROOT / "hack" / "versions.env").read_text().splitlines()
ARGO_VERSION = next(x.split("=", 1)[1] for x in PINS if x.startswith("ARGO_VERSION="))
ARGO_MODULE = "github.com/argoproj/argo-workflows/v4"
CACHE = Path(os.environ.get("KUBEHATCH_CACHE", Path.home() / ".cache" / "kubehatch"))
CONTROLLER = CACHE / "bin" / f"argo-{ARGO_VERSION}" / "workflow-controller"
EXECUTOR_IMAGE = f"localhost/kubehatch-peers/argoexec:{ARGO_VERSION}"
LOCAL_CONTAINERD = Path("/run/kubehatch-cluster/containerd/containerd.sock")
LOCAL_KUBECONFIG = Path("/var/lib/kubehatch-cluster/kubeconfig")
OUT = REPO_ROOT / "_output" / "bench"
METRICS_PORT = 19191
SERVICE_ACCOUNT = "argo-executor"
WF_LABEL, NODE_ID = "workflows.argoproj.io/workflow", "workflows.argoproj.io/node-id"
PEER_LABEL = "kubehatch.dev/peer-version"
Run = dict[str, Any]  # one Workflow's figures: see _run_result
CRD_DIR = Path("manifests", "base", "crds", "full")

# The restricted Pod Security Standard, as kubehatch's step pods have it.
CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}  # fmt: skip
POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}  # fmt: skip

# All the controller runs with, but for --namespaced, --managed-namespace, --namespace,
# --executor-image, --kubeconfig. Argo's docs/scaling.md: more workflow and pod clean-up
# workers; client rate limit from qps 20 / burst 30 to their example 50 / 75. Parallelism 0
# and no resourceRateLimit: unlimited (Argo's defaults). DEFAULT_REQUEUE_TIME: the default.
SETTINGS: dict[str, Any] = {
    "flags": {"--workflow-workers": 64, "--pod-cleanup-workers": 32, "--qps": 50, "--burst": 75},
    "env": {"LEADER_ELECTION_DISABLE": "true", "DEFAULT_REQUEUE_TIME": "10s"},
    "configmap": {
        "executor": {"imagePullPolicy": "IfNotPresent", "securityContext": CONTAINER_SECURITY},
        "parallelism": 0, "namespaceParallelism": 0,
        "metricsConfig": {"enabled": True, "port": METRICS_PORT, "secure": False},
    },
}  # fmt: skip
# What the executor (init and wait containers) needs: Argo's docs/workflow-rbac.md.
EXECUTOR_RULES = [
    {"apiGroups": [GROUP], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
]


def apply_crds() -> None:
    """Argo's full CRDs (as its namespace-install) from the Go module cache; kept if there."""
    cmd = ["go", "mod", "download", "-json", f"{ARGO_MODULE}@{ARGO_VERSION}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd="/").stdout
    paths = sorted((Path(json.loads(out)["Dir"]) / CRD_DIR).glob("argoproj.io_*.yaml"))
    api, selector = client.ApiextensionsV1Api(), f"{PEER_LABEL}={ARGO_VERSION}"
    have = api.list_custom_resource_definition(label_selector=selector).items
    for path in paths if len(have) < len(paths) else []:
        body = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        body["metadata"].setdefault("labels", {})[PEER_LABEL] = ARGO_VERSION
        try:
            api.create_custom_resource_definition(body)
        except ApiException as err:
            if err.status != 409:
                raise
            current = api.read_custom_resource_definition(name := body["metadata"]["name"])
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            api.replace_custom_resource_definition(name, body)

    def established() -> bool:
        crds = api.list_custom_resource_definition(label_selector=selector).items
        conds = [[c.type for c in x.status.conditions or [] if c.status == "True"] for x in crds]
        return len(crds) == len(paths) and all("Established" in c for c in conds)

    wait_for(established, 60, "Argo's CRDs to be Established")


def delete_crds() -> None:
    """Leave no trace: Argo's Workflow claims the short name `wf` too, and `kubectl get wf`
    would then have to guess which Workflow is meant."""
    api = client.ApiextensionsV1Api()
    selector = f"{PEER_LABEL}={ARGO_VERSION}"
    for crd in api.list_custom_resource_definition(label_selector=selector).items:
        try:
            api.delete_custom_resource_definition(crd.metadata.name)
        except ApiException as err:
            if err.status != 404:
                raise


class ArgoPeer:
    """Argo's workflow-controller as a host process, managing one namespace."""

    def __init__(self, log_dir: Path = OUT, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = {**SETTINGS["env"], **(env or {})}
        self.namespace: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None  # for CPU seconds and RSS from /proc

    def install(self, namespace: str) -> None:
        """CRDs, the namespace (restricted PSS), executor RBAC, ConfigMap; then start."""
        if not CONTROLLER.exists():
            raise RuntimeError(f"{CONTROLLER} missing: run hack/peers/build-peers.sh argo")
        if LOCAL_CONTAINERD.exists():  # build (cached) and import the argoexec image
            cmd = ["bash", str(REPO_ROOT / "hack" / "peers" / "build-argo.sh"), "load"]
            env = {**os.environ, "CONTAINERD_ADDRESS": str(LOCAL_CONTAINERD)}
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        apply_crds()
        core, rbac = client.CoreV1Api(), client.RbacAuthorizationV1Api()
        labels = {"pod-security.kubernetes.io/enforce": "restricted"}
        core.create_namespace({"metadata": {"name": namespace, "labels": labels}})
        meta = {"name": SERVICE_ACCOUNT}
        core.create_namespaced_service_account(namespace, {"metadata": meta})
        rbac.create_namespaced_role(namespace, {"metadata": meta, "rules": EXECUTOR_RULES})
        ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT}
        subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}
        binding = {"metadata": meta, "roleRef": ref, "subjects": [subject]}
        rbac.create_namespaced_role_binding(namespace, binding)
        data = {"config": yaml.safe_dump(SETTINGS["configmap"])}
        cm = {"metadata": {"name": "workflow-controller-configmap"}, "data": data}
        core.create_namespaced_config_map(namespace, cm)
        self.namespace = namespace
        self.start()

    def command(self) -> list[str]:
        ns = str(self.namespace)
        return [str(CONTROLLER), "--namespaced", "--managed-namespace", ns, "--namespace", ns,
                "--executor-image", EXECUTOR_IMAGE, "--kubeconfig", os.environ["KUBECONFIG"],
                *(f"{k}={v}" for k, v in SETTINGS["flags"].items())]  # fmt: skip

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"argo-controller-{self.namespace}.log", "ab")  # noqa: SIM115
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        wait_for(self._metrics_up, 60, "the workflow-controller's metrics endpoint")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = self.pid = None
        delete_crds()

    def _metrics_up(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"workflow-controller exited: see {self.log_dir}")
        try:
            return "argo_workflows_k8s_request_total" in self.metrics_text()
        except OSError:
            return False

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
        return urllib.request.urlopen(url, timeout=5).read().decode()

    def api_requests_by_kind(self) -> dict[str, float]:
        """Argo's counter of its requests to the API server, by kind, verb and status code."""
        prefix, text = "argo_workflows_k8s_request_total{", self.metrics_text()
        lines = [x.rpartition(" ") for x in text.splitlines() if x.startswith(prefix)]
        return {labels[len(prefix) : -1]: float(value) for labels, _, value in lines}

    def api_requests(self) -> int:
        return int(sum(self.api_requests_by_kind().values()))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        lines = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        return next((int(x.split()[1]) for x in lines if x.startswith("VmRSS:")), 0)


def chain_workflow(name: str, steps: int = 5, image: str = BASE_IMAGE) -> dict[str, Any]:
    """A DAG of `steps` sequential no-op steps (`python3 -c pass`), restricted PSS."""
    tasks = [{"name": "step-1", "template": "noop"}] + [
        {"name": f"step-{i}", "template": "noop", "depends": f"step-{i - 1}"}
        for i in range(2, steps + 1)
    ]
    noop = {
        "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", "pass"], "securityContext": CONTAINER_SECURITY,
    }  # fmt: skip
    spec = {
        "entrypoint": "chain", "serviceAccountName": SERVICE_ACCOUNT,
        "securityContext": POD_SECURITY,
        "templates": [
            {"name": "chain", "dag": {"tasks": tasks}}, {"name": "noop", "container": noop}],
    }  # fmt: skip
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"name": name},
            "spec": spec}  # fmt: skip


class Recorder:
    """Receive times (monotonic) of a namespace's pods and Workflows: one watch each."""

    def __init__(self, namespace: str) -> None:
        self.pod_seen: dict[str, float] = {}  # first seen
        self.pod_done: dict[str, float] = {}  # first seen ended
        self.wf_done: dict[str, float] = {}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._stop = threading.Event()
        self._ready = threading.Barrier(3)
        custom = client.CustomObjectsApi().list_namespaced_custom_object
        for args in [("Pod", client.CoreV1Api().list_namespaced_pod, namespace),
                     ("Workflow", custom, GROUP, VERSION, namespace, "workflows")]:  # fmt: skip
            threading.Thread(target=self._watch, args=args, daemon=True).start()
        self._ready.wait(30)

    def _watch(self, kind: str, list_fn: Any, *args: Any) -> None:
        # List, then watch from the list's version: nothing is missed in between.
        serialize = client.ApiClient().sanitize_for_serialization
        listed = serialize(list_fn(*args))
        rv = listed["metadata"]["resourceVersion"]
        for item in listed["items"]:
            self._record(item, kind)
        self._ready.wait(30)
        while not self._stop.is_set():
            stream = watch.Watch().stream(list_fn, *args, resource_version=rv, timeout_seconds=5)
            for event in stream:
                obj = serialize(event["object"])
                rv = obj["metadata"]["resourceVersion"]
                self._record(obj, kind)

    def _record(self, obj: dict[str, Any], kind: str) -> None:
        now, name = time.monotonic(), obj["metadata"]["name"]
        phase = (obj.get("status") or {}).get("phase")
        self.objects[kind, name] = obj
        if kind == "Workflow":
            if phase in ("Succeeded", "Failed", "Error"):
                self.wf_done.setdefault(name, now)
            return
        self.pod_seen.setdefault(name, now)
        if phase in ("Succeeded", "Failed"):
            self.pod_done.setdefault(name, now)

    def pods_of(self, workflow: str) -> list[dict[str, Any]]:
        """The workflow's pods, in the order they were first seen."""
        pods = [o for (k, _), o in list(self.objects.items()) if k == "Pod"]
        pods = [p for p in pods if p["metadata"].get("labels", {}).get(WF_LABEL) == workflow]
        return sorted(pods, key=lambda p: self.pod_seen[p["metadata"]["name"]])

    def stop(self) -> None:
        self._stop.set()  # the watches end within their 5 s timeout


def _run_result(rec: Recorder, name: str, submitted: float) -> Run:
    """One run: its status times, and per step pod, receive times relative to its submission."""
    status = (wf := rec.objects["Workflow", name]).get("status") or {}
    nodes = {k: v for k, v in (status.get("nodes") or {}).items() if v.get("type") == "Pod"}
    steps = []
    for pod in rec.pods_of(name):
        pod_name = pod["metadata"]["name"]
        node = nodes.get(pod["metadata"].get("annotations", {}).get(NODE_ID), {})
        statuses = (pod.get("status") or {}).get("containerStatuses", [])
        main = next((c["state"] for c in statuses if c["name"] == "main"), {}).get("terminated", {})
        done = rec.pod_done.get(pod_name)
        steps.append({
            "node": node.get("displayName"), "pod": pod_name, "phase": node.get("phase"),
            "pod_created": pod["metadata"]["creationTimestamp"],
            "pod_seen_s": round(rec.pod_seen[pod_name] - submitted, 3),
            "pod_done_seen_s": round(done - submitted, 3) if done else None,
            "main_started": main.get("startedAt"), "main_finished": main.get("finishedAt"),
            "node_started": node.get("startedAt"), "node_finished": node.get("finishedAt"),
        })  # fmt: skip
    return {
        "name": name, "phase": status.get("phase"), "created": wf["metadata"]["creationTimestamp"],
        "started": status.get("startedAt"), "finished": status.get("finishedAt"),
        "wall_seconds": round(rec.wf_done[name] - submitted, 3), "nodes": steps,
    }  # fmt: skip


def run_chains(namespace: str, runs: int, steps: int = 5, timeout: float = 900) -> list[Run]:
    """Submit `runs` chains at once and wait for all; per run: status, pods, receive times."""
    rec = Recorder(namespace)
    names = [f"chain-{uuid.uuid4().hex[:6]}-{i}" for i in range(runs)]
    submitted: dict[str, float] = {}

    def one(name: str) -> None:
        submitted[name] = time.monotonic()
        client.CustomObjectsApi().create_namespaced_custom_object(
            GROUP, VERSION, namespace, "workflows", chain_workflow(name, steps))  # fmt: skip

    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, names))
        wait_for(lambda: all(n in rec.wf_done for n in names), timeout, f"{runs} Argo chains")
        time.sleep(1)  # the last pods' final status reaches the watch
        return [_run_result(rec, n, submitted[n]) for n in names]
    finally:
        rec.stop()


def trigger_latency(namespace: str, tries: int) -> list[float]:
    """Seconds from creating a one-step Workflow to its pod on a watch; one at a time."""
    return [run_chains(namespace, 1, 1)[0]["nodes"][0]["pod_seen_s"] for _ in range(tries)]


def summarize(runs: list[Run], steps: int) -> dict[str, Any]:
    """Wall and per-step time; a pod's life; hand-offs (a pod's end seen -> next pod seen)."""
    walls = [r["wall_seconds"] for r in runs]
    nodes = [n for r in runs for n in r["nodes"] if n["pod_done_seen_s"] is not None]
    pairs = [(a, b) for r in runs for a, b in zip(r["nodes"], r["nodes"][1:], strict=False)]
    handoffs = [b["pod_seen_s"] - a["pod_done_seen_s"] for a, b in pairs if a["pod_done_seen_s"]]
    median = statistics.median
    ms = lambda xs, f: round(1000 * f(xs), 1) if xs else None  # noqa: E731
    return {
        "runs": len(runs), "succeeded": sum(r["phase"] == "Succeeded" for r in runs),
        "wall_seconds_median": round(median(walls), 3), "wall_seconds_max": max(walls),
        "seconds_per_step": round(median(walls) / steps, 3),
        "first_pod_seen_ms_median": ms([r["nodes"][0]["pod_seen_s"] for r in runs], median),
        "pod_seen_to_done_ms_median": ms(
            [n["pod_done_seen_s"] - n["pod_seen_s"] for n in nodes], median),
        "handoff_ms_median": ms(handoffs, median), "handoff_ms_max": ms(handoffs, max),
    }  # fmt: skip


def ensure_cluster() -> None:
    """The local cluster (idempotent `localcluster up`) unless $KUBECONFIG names another."""
    if os.environ.get("KUBECONFIG", str(LOCAL_KUBECONFIG)) == str(LOCAL_KUBECONFIG):
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "hack" / "cluster")}
        up = [sys.executable, "-m", "localcluster", "up"]
        subprocess.run(up, env=env, check=True, stdout=subprocess.DEVNULL)
        os.environ["KUBECONFIG"] = str(LOCAL_KUBECONFIG)
    config.load_kube_config(config_file=os.environ["KUBECONFIG"])


def profile(requeue: str, runs: int, steps: int, tries: int, detail: dict[str, Any]) -> Run:
    """Fresh namespace: warm-up, 1 chain, `runs` chains, trigger latency; per-run -> `detail`."""
    namespace = f"argo-bench-{uuid.uuid4().hex[:6]}"
    peer = ArgoPeer(env={"DEFAULT_REQUEUE_TIME": requeue})
    result: dict[str, Any] = {"namespace": namespace}

    def measured(key: str, steps_run: int, fn: Any) -> Any:
        b, cpu = peer.api_requests_by_kind(), peer.cpu_seconds()  # before
        detail[f"{requeue}/{key}"] = out = fn()
        by_kind = {k: d for k, v in peer.api_requests_by_kind().items() if (d := v - b.get(k, 0))}
        api = int(sum(by_kind.values()))
        result[key] = {"controller_api_requests": api,
                       "controller_api_requests_per_step": round(api / steps_run, 2),
                       "controller_cpu_seconds": round(peer.cpu_seconds() - cpu, 2),
                       "controller_api_requests_by_kind": by_kind}  # fmt: skip
        return out

    try:
        peer.install(namespace)
        result["command"], result["env"] = peer.command(), peer.env
        run_chains(namespace, 1, 1)  # the namespace's first pod (SA token, image) is not timed
        for n, key in ((1, f"chains_1x{steps}"), (runs, f"chains_{runs}x{steps}")):
            out = measured(key, n * steps, lambda n=n: run_chains(namespace, n, steps))
            result[key].update(summarize(out, steps))
        seconds = measured("trigger_latency", tries, lambda: trigger_latency(namespace, tries))
        result["trigger_latency"].update(seconds=seconds, median=statistics.median(seconds))
        result["controller_rss_mib"] = round(peer.rss_kib() / 1024, 1)
        result["controller_cpu_seconds_total"] = round(peer.cpu_seconds(), 2)
    finally:
        peer.stop()
        client.CoreV1Api().delete_namespace(namespace)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.argo", description=__doc__)
    parser.add_argument("--requeue", default="10s,1s", help="DEFAULT_REQUEUE_TIME values")
    for name in ("steps", "runs", "tries"):  # steps per chain, chains at once, trigger tries
        parser.add_argument(f"--{name}", type=int, default=5)
    args = parser.parse_args()
    ensure_cluster()
    results: dict[str, Any] = {"argo_version": ARGO_VERSION, "settings": SETTINGS}
    detail: dict[str, Any] = {}
    for rq in args.requeue.split(","):
        results[f"requeue_{rq}"] = profile(rq, args.runs, args.steps, args.tries, detail)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "argo.json").write_text(json.dumps({**results, "detail": detail}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
