"""What `make bench-scale` (tests/bench/scale.py) needs besides kwok: the operator as a
host process with its probes and /proc readings, the API server's own write counters,
and runs created fast (a thread pool; responses left unparsed, since this process
shares the machine's two cores with what it measures).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.bench.common import OUT, cpu_seconds, percentile, rss_kib
from tests.bench.kwok import FAKE_JOBS, HOLD_LABEL, NODE_SELECTOR, TOLERATIONS
from tests.e2e import kube
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.support import REPO_ROOT, wait_for

ONE, HOLD, SERIAL = "one", "hold", "serial"
"""Workflows: one step; one step whose pods kwok keeps Running; one step, maxRuns 1."""
FINISHED = ("Succeeded", "Failed", "Cancelled")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def free_port() -> int:
    """A port nothing listens on now (other benchmarks and peers run beside this one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FAKE_JOBS_SHIM = f"""
import sys
import kubehatch_operator.jobs as jobs
from kubehatch_operator.__main__ import main

made = jobs.step_job
def step_job(**kwargs):
    job = made(**kwargs)
    job["spec"]["managedBy"] = {FAKE_JOBS!r}
    return job

jobs.step_job = step_job
main(sys.argv[1:])
"""
"""The operator, its Jobs marked for kwok (no Job controller, no pods): bench-only, in
this process's copy of the operator; no setting of the operator's does this."""


class Operator(OperatorProcess):
    """The operator as a host process: step pods on kwok's nodes, kopf's /healthz on."""

    def __init__(self, namespace: str, fake_jobs: bool = False) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        self.fake_jobs = fake_jobs
        super().__init__(namespace, OUT / f"scale-operator-{namespace}.log", env={
            "KUBEHATCH_METRICS_PORT": str(self.metrics_port),
            "KUBEHATCH_STEP_NODE_SELECTOR": json.dumps(NODE_SELECTOR),
            "KUBEHATCH_STEP_TOLERATIONS": json.dumps(TOLERATIONS),
        })  # fmt: skip

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        run = ["-c", FAKE_JOBS_SHIM] if self.fake_jobs else ["-m", "kubehatch_operator"]
        self.proc = subprocess.Popen(
            [sys.executable, *run, "--standalone", "--namespace", self.namespace_pattern,
             f"--liveness=http://127.0.0.1:{self.health_port}/healthz"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )  # fmt: skip
        self.starts += 1

    def healthy(self) -> bool:
        """kopf answers /healthz once the startup handler (the full listing) is done."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited; see {self.log_path}")
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        return prometheus(urllib.request.urlopen(url, timeout=5).read().decode())

    def in_flight(self) -> float:
        """Runs the operator holds unfinished (its gauge): cheaper than listing them."""
        return self.metrics()["kubehatch_runs_in_flight"]

    def usage(self) -> dict[str, float]:
        """CPU seconds so far, resident MiB now and at its peak (VmHWM)."""
        pid = self.pid or 0
        return {
            "cpu_seconds": cpu_seconds(pid),
            "rss_mib": round(rss_kib(pid) / 1024, 1),
            "peak_rss_mib": round(rss_kib(pid, "VmHWM") / 1024, 1),
        }


def prometheus(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def grow(before: dict[str, float], after: dict[str, float], prefix: str) -> dict[str, float]:
    """How much each series named `prefix` grew, keyed by its labels ("" for none);
    with no prefix, every key."""
    grown = {}
    for name, value in after.items():
        base, _, labels = name.partition("{")
        if value > before.get(name, 0.0) and (not prefix or base == prefix):
            grown[labels.rstrip("}") if prefix else name] = value - before.get(name, 0.0)
    return grown


def apiserver_writes() -> dict[str, float]:
    """All clients' writes as the API server counts them, by verb and resource; and under
    "started", when the API server started (a restart mid-phase spoils the figures)."""
    api = client.ApiClient()
    response = api.call_api(*api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"]))
    response.read()
    totals: dict[str, float] = {}
    for line in response.data.decode().splitlines():
        if line.startswith("process_start_time_seconds "):
            totals["started"] = float(line.split()[1])
        if not line.startswith("apiserver_request_total{"):
            continue
        name, _, value = line.rpartition(" ")
        labels = dict(p.split("=", 1) for p in name[24:-1].split(",") if "=" in p)
        verb, resource = labels["verb"].strip('"'), labels["resource"].strip('"')
        sub = labels.get("subresource", '""').strip('"')
        if verb in WRITES:
            key = f"{verb} {resource}{'/' + sub if sub else ''}"
            totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def per_run(counts: dict[str, float], runs: int) -> dict[str, float]:
    """Counts per run, largest first, leaving out what fewer than 1 in 20 runs cost."""
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    return {k: round(v / runs, 2) for k, v in ordered if v >= runs / 20}


def namespace(phase: str) -> str:
    name = f"scale-{phase}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api().create_namespace({"metadata": {"name": name}})
    kube.create_step_service_account(name)
    return name


def workflow(name: str, concurrency: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service": "scale",
        "image": "localhost/kubehatch/kwok-never-pulled:1",  # kwok runs no container
        "steps": [{"name": "only", "action": "noop"}],
        **({"concurrency": concurrency} if concurrency else {}),
    }
    return {"apiVersion": f"{kube.GROUP}/{kube.VERSION}", "kind": "Workflow",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


def custom_api(threads: int = 16) -> client.CustomObjectsApi:
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = threads
    return client.CustomObjectsApi(client.ApiClient(configuration))


def in_parallel(fn: Callable[[int], object], count: int, threads: int = 16) -> float:
    """fn(0), ..., fn(count - 1) from a pool of threads; the seconds it took."""
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, range(count)))
    return time.monotonic() - started


def create_runs(
    ns: str, workflow_name: str, names: list[str], input: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None, plural: str = "workflowruns",
    body: Callable[[str], dict[str, Any]] | None = None,
) -> float:  # fmt: skip
    """Create runs from 16 threads; with `status`, write it too (a finished run's)."""
    custom = custom_api()
    group, version = (kube.GROUP, kube.VERSION) if body is None else ("argoproj.io", "v1alpha1")

    def create(i: int) -> None:
        made = body(names[i]) if body else {
            "apiVersion": f"{kube.GROUP}/{kube.VERSION}", "kind": "WorkflowRun",
            "metadata": {"name": names[i], "labels": {"kubehatch.dev/workflow": workflow_name}},
            "spec": {"workflowRef": {"name": workflow_name}, "input": input or {}},
        }  # fmt: skip
        # Responses are not parsed: this process shares two cores with what it measures.
        persist(lambda: custom.create_namespaced_custom_object(
            group, version, ns, plural, made, _preload_content=False
        ).read())  # fmt: skip
        if status is not None:
            persist(lambda: custom.patch_namespaced_custom_object_status(
                group, version, ns, plural, names[i], {"status": status}, _preload_content=False
            ).read())  # fmt: skip

    return in_parallel(create, len(names))


def persist(call: Callable[[], object], tries: int = 30) -> None:
    """Call, again while the API server is away or busy (a shared cluster's chaos tests
    restart it); a create that already went through answers 409."""
    for attempt in range(tries):
        try:
            call()
            return
        except ApiException as err:
            if err.status == 409:
                return
            if err.status not in (429, 500, 503, 504) or attempt == tries - 1:
                raise
        except urllib3.exceptions.HTTPError:
            if attempt == tries - 1:
                raise
        time.sleep(1)


def list_items(
    ns: str, plural: str = "workflowruns", group: str = kube.GROUP
) -> list[dict[str, Any]]:
    return client.CustomObjectsApi().list_namespaced_custom_object(
        group, "v1alpha1", ns, plural, resource_version="0"
    )["items"]  # fmt: skip


def stamp(item: dict[str, Any], field: str) -> float | None:
    value = (item.get("status") or {}).get(field)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def phases(items: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        phase = (item.get("status") or {}).get("phase") or "none"
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def run_phase(ns: str, name: str) -> str | None:
    return (kube.get_run(ns, name).get("status") or {}).get("phase")


def probe_run(ns: str, name: str, cap: float = 300) -> float | None:
    """Create a one-step run and wait for it to succeed: the seconds it took (None: more
    than `cap`)."""
    started = time.monotonic()
    create_runs(ns, ONE, [name])
    done = waited(lambda: run_phase(ns, name) == "Succeeded", cap)
    return time.monotonic() - started if done else None


def waited(probe: Callable[[], bool], cap: float) -> bool:
    """Wait for `probe` at most `cap` seconds: whether it came true."""
    try:
        wait_for(probe, cap, "")
    except AssertionError:
        return False
    return True


def start_operator(ns: str, fake_jobs: bool = False) -> Operator:
    op = Operator(ns, fake_jobs)
    op.start()
    wait_for(op.healthy, 120, "the operator's /healthz")
    return op


DROPPED: set[str] = set()
"""Namespaces deleted by this run: kwok must outlive their pods (it plays pod-delete)."""


def drop_namespace(ns: str) -> None:
    client.CoreV1Api().delete_namespace(ns)
    DROPPED.add(ns)


def rates(t0: float, finished_at: list[float], runs: int, window: float) -> dict[str, Any]:
    done = sorted(t - t0 for t in finished_at)
    drained = len(done) >= runs
    lo, hi = percentile(done, 0.1), percentile(done, 0.9)  # finishedAt: 1 s resolution
    return {
        "finished": len(done), "drained": drained,
        "drain_seconds": round(done[-1], 1) if drained else None,
        "runs_per_minute": round(60 * len(done) / (done[-1] if drained else window)),
        "runs_per_minute_p10_p90": round(60 * 0.8 * len(done) / max(hi - lo, 1.0)),
    }  # fmt: skip


def running_jobs(ns: str, workflow_name: str) -> int:
    """Jobs of the workflow whose pod runs, as the Job controller last recorded it (ready):
    until then it still has writes to make for them, which a timed run would queue behind."""
    jobs = client.BatchV1Api().list_namespaced_job(
        ns, label_selector=f"{HOLD_LABEL}={workflow_name}"
    )  # fmt: skip
    return sum(1 for job in jobs.items if (job.status.ready or 0) >= 1)


def source_version() -> str:
    """The commit the operator ran from (it runs from this work tree), and whether the tree
    differs from it: figures belong to a version."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True).stdout.strip()  # fmt: skip

    dirty = git("status", "--porcelain", "--", "operator", "sdk")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def gone_pending() -> list[str]:
    """The benchmark's namespaces still being deleted (kwok must outlive their pods)."""
    names = [n.metadata.name for n in client.CoreV1Api().list_namespace().items]
    return [n for n in names if n in DROPPED]
