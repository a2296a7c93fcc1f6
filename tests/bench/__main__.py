"""`make bench`: the operator's figures on a real cluster.

1. Handoff latency: 50 runs of a three-step chain in flight at once; for every step, the
   time from its Job's completion reaching a watch to its child's Job appearing on the
   same watch (so the figure includes both watch deliveries, as a user would see it).
2. API writes per step, from the operator's own counter.
3. Memory: the operator's resident set size after listing N finished runs, against an
   operator started on an empty cluster.

Results are printed and written to _output/bench/results.json. Numbers from this
2-core machine are what the notes report; nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from kubehatch import workflow_manifests
from tests.e2e import kube
from tests.e2e.images import e2e_image
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.support import REPO_ROOT, wait_for
from tests.e2e.workers.dags import worker

METRICS_PORT = 19090
CHAIN = {"second": "first", "third": "second"}


def ensure_cluster() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "hack" / "cluster")}
    if not os.environ.get("KUBECONFIG"):
        subprocess.run([sys.executable, "-m", "localcluster", "up"], env=env, check=True)
        path = subprocess.run(
            [sys.executable, "-m", "localcluster", "kubeconfig"], env=env, capture_output=True,
            text=True, check=True,
        ).stdout.strip()  # fmt: skip
        os.environ["KUBECONFIG"] = path
    from kubernetes import config

    # Named explicitly: the client read $KUBECONFIG when it was imported, before it was set.
    config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    kube.apply_crds(REPO_ROOT / "crds")


def namespace() -> str:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    kube.create_step_service_account(name)
    return name


def metrics() -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).read()
    values: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class JobWatch(threading.Thread):
    """Records when each Job was first seen, and when it was first seen succeeded."""

    def __init__(self, ns: str) -> None:
        super().__init__(daemon=True)
        self.ns = ns
        self.added: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        w = watch.Watch()
        for event in w.stream(
            client.BatchV1Api().list_namespaced_job, self.ns, timeout_seconds=900
        ):
            now = time.monotonic()
            job = event["object"]
            name = job.metadata.name
            self.added.setdefault(name, now)
            self.labels[name] = job.metadata.labels or {}
            conditions = {c.type for c in job.status.conditions or [] if c.status == "True"}
            if (job.status.succeeded or 0) >= 1 or "SuccessCriteriaMet" in conditions:
                self.succeeded.setdefault(name, now)
            if self.stop.is_set():
                w.stop()


def bench_handoff(image: str, runs: int) -> dict[str, Any]:
    ns = namespace()
    manifest = next(m for m in workflow_manifests(worker) if m["metadata"]["name"] == "chain")
    kube.apply_workflow(ns, manifest, image)
    watcher = JobWatch(ns)
    watcher.start()
    time.sleep(1)  # the watch is established before the first Job appears
    before = metrics()
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: kube.create_run(ns, f"run-{i}", "chain"), range(runs)))

    def all_done() -> bool:
        items = client.CustomObjectsApi().list_namespaced_custom_object(
            kube.GROUP, kube.VERSION, ns, "workflowruns"
        )["items"]
        phases = [(i.get("status") or {}).get("phase") for i in items]
        return all(p in ("Succeeded", "Failed") for p in phases) and len(phases) == runs

    wait_for(all_done, 900, f"{runs} chain runs to finish")
    elapsed = time.monotonic() - started
    watcher.stop.set()
    after = metrics()
    latencies = []
    # Job names hash the run's uid: find a parent's Job by its labels.
    by_step = {
        (
            lb.get("kubehatch.dev/run"),
            lb.get("kubehatch.dev/step"),
            lb.get("kubehatch.dev/attempt"),
        ): j
        for j, lb in watcher.labels.items()
    }
    for job, labels in watcher.labels.items():
        parent = CHAIN.get(labels.get("kubehatch.dev/step", ""))
        if parent is None:
            continue
        parent_job = by_step.get((labels.get("kubehatch.dev/run"), parent, "1"), "")
        if parent_job in watcher.succeeded and job in watcher.added:
            latencies.append(watcher.added[job] - watcher.succeeded[parent_job])
    writes = {
        k: after.get(k, 0) - before.get(k, 0)
        for k in after
        if k.startswith("kubehatch_api_writes_total{")
    }
    steps = runs * 3
    handoff_sum = after.get("kubehatch_step_handoff_seconds_sum", 0) - before.get(
        "kubehatch_step_handoff_seconds_sum", 0
    )
    handoff_count = after.get("kubehatch_step_handoff_seconds_count", 0) - before.get(
        "kubehatch_step_handoff_seconds_count", 0
    )
    phases = [
        (i.get("status") or {}).get("phase")
        for i in client.CustomObjectsApi().list_namespaced_custom_object(
            kube.GROUP, kube.VERSION, ns, "workflowruns"
        )["items"]
    ]
    client.CoreV1Api().delete_namespace(ns)
    return {
        "runs": runs,
        "succeeded": phases.count("Succeeded"),
        "wall_seconds": round(elapsed, 1),
        "handoffs_measured": len(latencies),
        "handoff_ms_p50": round(1000 * statistics.median(latencies), 1),
        "handoff_ms_p90": round(1000 * percentile(latencies, 0.9), 1),
        "handoff_ms_p99": round(1000 * percentile(latencies, 0.99), 1),
        "handoff_ms_max": round(1000 * max(latencies), 1),
        "operator_internal_handoff_ms_mean": round(1000 * handoff_sum / max(handoff_count, 1), 2),
        "api_writes_per_step": round(sum(writes.values()) / steps, 2),
        "api_writes_by_kind": {k.split("{", 1)[1].rstrip("}"): v for k, v in writes.items() if v},
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_memory(finished_runs: int, log_dir: Path) -> dict[str, Any]:
    ns = namespace()
    custom = client.CustomObjectsApi()
    now = "2026-01-01T00:00:00Z"

    def make(i: int) -> None:
        name = f"done-{i}"
        kube.create_run(ns, name, "chain", {"i": i})
        status = {"phase": "Succeeded", "startedAt": now, "finishedAt": now, "progress": "3/3"}
        custom.patch_namespaced_custom_object_status(
            kube.GROUP, kube.VERSION, ns, "workflowruns", name, {"status": status}
        )

    empty = OperatorProcess("bench-none-*", log_dir / "memory-empty.log")
    empty.start()
    time.sleep(8)
    assert empty.proc is not None
    rss_empty = rss_kib(empty.proc.pid)
    empty.stop()
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(make, range(finished_runs)))
    created = time.monotonic() - started
    op = OperatorProcess("bench-*", log_dir / "memory-full.log")
    op.start()
    time.sleep(8 + finished_runs / 500)
    assert op.proc is not None
    rss_full = rss_kib(op.proc.pid)
    op.stop()
    client.CoreV1Api().delete_namespace(ns)
    return {
        "finished_runs": finished_runs,
        "seconds_to_create_them": round(created, 1),
        "operator_rss_mib_empty": round(rss_empty / 1024, 1),
        "operator_rss_mib_with_finished_runs": round(rss_full / 1024, 1),
        "rss_kib_per_finished_run": round((rss_full - rss_empty) / finished_runs, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--finished-runs", type=int, default=2000)
    args = parser.parse_args()
    out = REPO_ROOT / "_output" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    ensure_cluster()
    image = e2e_image()
    results: dict[str, Any] = {}
    import os

    os.environ["KUBEHATCH_METRICS_PORT"] = str(METRICS_PORT)
    op = OperatorProcess("bench-*", out / "operator.log")
    op.start()
    try:
        wait_for(lambda: _metrics_up(), 30, "the operator's metrics endpoint")
        results["handoff"] = bench_handoff(image, args.runs)
    finally:
        op.stop()
    os.environ["KUBEHATCH_METRICS_PORT"] = "0"
    results["memory"] = bench_memory(args.finished_runs, out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def _metrics_up() -> bool:
    try:
        metrics()
    except OSError:
        return False
    return True


if __name__ == "__main__":
    main()
