"""The pool row of `make bench`: the same 5-step chain of no-op steps on a WorkerPool of
two warm workers and in Jobs, 20 runs in flight, in one run of the bench.

Each step records when its code started (``t`` in its output, the clock of the one node
that runs the bench, the workers and the pods). Step to step is a child's start minus its
parent's start (the parent's no-op code takes well under a millisecond), the same measure
in both modes. For the pool, also the issue's measure: the parent's end as its worker
recorded it (the task's ``status.finishedAt``) to the child's start in the worker.
"""

from __future__ import annotations

import itertools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from kubernetes import client

from kubehatch import workflow_manifests
from tests.bench import cpumeter
from tests.bench.common import OUT, namespace, summary_ms
from tests.e2e import kube
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.support import wait_for
from tests.e2e.workers import pools

GROUP, VERSION = kube.GROUP, kube.VERSION
STEPS = [f"s{i}" for i in range(1, 6)]
WORKERS = 2
SLOTS = 10
"""Two pods of ten slots: the 20 runs' steps all run at once."""
HATCHET_DISPATCH_MS = 25
"""Hatchet's published p95 for handing a task to a hot worker (BENCHMARKS.md, "Published
figures")."""


def _install(ns: str, image: str) -> None:
    kube.create_worker_service_account(ns)
    pool = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkerPool",
        "metadata": {"name": "bench"},
        "spec": {"image": image, "worker": pools.WORKER_REF, "replicas": WORKERS, "slots": SLOTS},
    }
    client.CustomObjectsApi().create_namespaced_custom_object(
        GROUP, VERSION, ns, "workerpools", pool
    )
    (chain,) = [
        m for m in workflow_manifests(pools.worker) if m["metadata"]["name"] == "pool-chain"
    ]
    spec = {**chain["spec"], "worker": pools.WORKER_REF}
    for name, extra in (("on-pool", {"pool": "bench"}), ("in-jobs", {})):
        manifest = {**chain, "metadata": {"name": name}, "spec": {**spec, **extra}}
        kube.apply_workflow(ns, manifest, image)


def _ready(ns: str) -> bool:
    pool = client.CustomObjectsApi().get_namespaced_custom_object(
        GROUP, VERSION, ns, "workerpools", "bench"
    )
    return (pool.get("status") or {}).get("readyReplicas", 0) >= WORKERS


def _run_all(ns: str, workflow: str, runs: int) -> list[str]:
    names = [f"{workflow}-{uuid.uuid4().hex[:6]}" for _ in range(runs)]
    with ThreadPoolExecutor(min(runs, 20)) as executor:
        list(executor.map(lambda n: kube.create_run(ns, n, workflow, {"start": 0}), names))
    for name in names:
        done = kube.wait_for_phase(ns, name, {"Succeeded", "Failed"}, timeout=600)
        assert done["status"]["phase"] == "Succeeded", (name, done["status"].get("steps"))
    return names


def _starts(ns: str, run: str) -> list[float]:
    steps = kube.get_run(ns, run)["status"]["steps"]
    return [kube.output(ns, steps[s]["outputConfigMap"])["t"] for s in STEPS]


def _ends(ns: str, run: str) -> dict[str, float]:
    """Each step's end as its worker recorded it (the task's status.finishedAt)."""
    listed = client.CustomObjectsApi().list_namespaced_custom_object(
        GROUP, VERSION, ns, "workertasks", label_selector=f"kubehatch.dev/run={run}"
    )
    return {
        t["metadata"]["labels"]["kubehatch.dev/step"]: _epoch(t["status"]["finishedAt"])
        for t in listed["items"]
    }


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _mode(ns: str, workflow: str, runs: int, pooled: bool, rounds: int = 1) -> dict[str, Any]:
    """``rounds`` of ``runs`` runs at once, one round after the other."""
    began = time.monotonic()
    names = [name for _ in range(rounds) for name in _run_all(ns, workflow, runs)]
    wall = (time.monotonic() - began) / rounds
    gaps: list[float] = []
    handoffs: list[float] = []
    for run in names:
        starts = _starts(ns, run)
        gaps += [b - a for a, b in itertools.pairwise(starts)]
        if pooled:
            ends = _ends(ns, run)
            handoffs += [starts[i + 1] - ends[STEPS[i]] for i in range(len(STEPS) - 1)]
    result: dict[str, Any] = {
        "runs": runs,
        "wall_seconds_all_runs": round(wall, 2),
        "step_to_step_ms": summary_ms(gaps),
    }
    if pooled:
        result["parent_end_to_child_start_ms"] = summary_ms(handoffs)
    return result


def measure(image: str, runs: int = 20) -> dict[str, Any]:
    """The pool and Job rows, 1 warm-up run each, then ``runs`` in flight per mode."""
    ns = namespace("bench-pool")
    _install(ns, image)
    op = OperatorProcess("bench-pool-*", OUT / "operator-pool.log")
    op.start()
    try:
        wait_for(lambda: _ready(ns), 180, "the bench WorkerPool's workers")
        _run_all(ns, "on-pool", 1)
        _run_all(ns, "in-jobs", 1)  # the namespace's first pods are not timed
        single = _mode(ns, "on-pool", 1, pooled=True, rounds=5)
        before = cpumeter.sample()
        pool = _mode(ns, "on-pool", runs, pooled=True)
        pool["cpu_ms_per_step"] = cpumeter.per_step_ms(before, cpumeter.sample(), runs * len(STEPS))
        jobs = _mode(ns, "in-jobs", runs, pooled=False)
        ratio = jobs["step_to_step_ms"]["p50"] / max(pool["step_to_step_ms"]["p50"], 0.001)
        return {
            "workers": WORKERS,
            "slots": SLOTS,
            "pool_1_run": single,
            "pool": pool,
            "jobs": jobs,
            "jobs_over_pool_step_to_step_p50": round(ratio, 1),
            "hatchet_published_dispatch_ms": HATCHET_DISPATCH_MS,
        }
    finally:
        op.stop()
        client.CoreV1Api().delete_namespace(ns)


def render(result: dict[str, Any]) -> str:
    pool, jobs, single = result["pool"], result["jobs"], result["pool_1_run"]

    def cell(summary: dict[str, float]) -> str:
        return f"{summary.get('p50', '-')} / {summary.get('p99', '-')}"

    cpu = ", ".join(f"{k} {v}" for k, v in pool.get("cpu_ms_per_step", {}).items())
    return "\n".join(
        [
            f"Worker pool ({result['workers']} pods x {result['slots']} slots) vs Jobs, "
            "5-step no-op chain (ms, p50 / p99)",
            f"  1 run at a time, pool: step to step       {cell(single['step_to_step_ms'])}",
            "  1 run at a time, pool: parent's end to child's start  "
            f"{cell(single['parent_end_to_child_start_ms'])}",
            f"  {pool['runs']} in flight, pool: step to step       {cell(pool['step_to_step_ms'])}",
            f"  {pool['runs']} in flight, pool: parent's end to child's start  "
            f"{cell(pool['parent_end_to_child_start_ms'])}",
            f"  {jobs['runs']} in flight, Jobs: step to step       {cell(jobs['step_to_step_ms'])}",
            f"  Jobs / pool, step to step p50: {result['jobs_over_pool_step_to_step_p50']}x; "
            f"all {pool['runs']} runs' wall: pool {pool['wall_seconds_all_runs']} s, "
            f"Jobs {jobs['wall_seconds_all_runs']} s",
            f"  CPU per step on the pool, 20 in flight (ms): {cpu}",
            f"  Hatchet's published dispatch p95: ~{result['hatchet_published_dispatch_ms']} ms",
        ]
    )
