"""`make bench`: what a user feels, kubehatch beside Argo Workflows on the same cluster.

1. The pod floor: a bare Job's creation to its container running, stopped, and Complete.
2. A 5-step chain of no-op steps, 1 run at a time and 20 in flight: wall time, and each
   step's gap (parent's container stopped to child's container running) and overhead
   (the gap minus the floor's creation-to-running).
3. Trigger latency: an event (kubehatch: a WorkflowEvent; Argo: a Workflow created) to
   the first step pod on a watch.
4. kubehatch's API writes per step (its own counter) and memory with N finished runs.

Argo runs when it is built (`make bench-peers`); `--no-peers` skips it. Results are
printed as one table and written to _output/bench/results.json. Figures from this
2-core machine are what the notes report; nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.bench import chains, floor, table
from tests.bench.common import OUT, ensure_cluster, namespace, rss_kib, scrape, serving
from tests.e2e import kube
from tests.e2e.images import e2e_image, kubehatch_images
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.support import wait_for

METRICS_PORT = 19090
EVENT_KEY = "bench:go"

__all__ = ["ensure_cluster", "namespace"]  # what tests.bench.scale borrows


def bench_kubehatch(image: str, floor_running: float, args: argparse.Namespace) -> dict[str, Any]:
    ns = namespace()
    chains.install(ns, image, events=(EVENT_KEY,))
    op = OperatorProcess(
        "bench-*", OUT / "operator.log", env={"KUBEHATCH_METRICS_PORT": str(METRICS_PORT)}
    )
    op.start()
    try:
        wait_for(lambda: serving(METRICS_PORT), 30, "the operator's metrics endpoint")
        results: dict[str, Any] = {}
        singles = [chains.run_chains(ns, 1, floor_running) for _ in range(args.single_runs)]
        results["chain_1"] = _merge(singles)
        before = scrape(METRICS_PORT)
        results["chain_20"] = chains.run_chains(ns, args.runs, floor_running)
        after = scrape(METRICS_PORT)
        writes = {
            k.split("{", 1)[1].rstrip("}"): after[k] - before.get(k, 0)
            for k in after
            if k.startswith("kubehatch_api_writes_total{") and after[k] > before.get(k, 0)
        }
        steps = args.runs * len(chains.CHAIN)
        results["api_writes_per_step"] = round(sum(writes.values()) / steps, 2)
        results["api_writes_by_kind"] = writes
        results["trigger"] = chains.trigger_latency(ns, EVENT_KEY, args.trigger_tries)
        return results
    finally:
        op.stop()
        client.CoreV1Api().delete_namespace(ns)


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Single-run chains measured one after another, reported as one sample set."""
    return {**results[-1], "runs": len(results), "succeeded": sum(r["succeeded"] for r in results)}


def bench_memory(finished_runs: int) -> dict[str, Any]:
    """The operator's RSS after listing N finished runs, against an empty cluster's."""
    ns = namespace()
    custom = client.CustomObjectsApi()
    now = "2026-01-01T00:00:00Z"

    def make(i: int) -> None:
        name = f"done-{i}"
        kube.create_run(ns, name, "noop-chain", {"i": i})
        status = {"phase": "Succeeded", "startedAt": now, "finishedAt": now, "progress": "5/5"}
        custom.patch_namespaced_custom_object_status(
            kube.GROUP, kube.VERSION, ns, "workflowruns", name, {"status": status}
        )

    empty = OperatorProcess("bench-none-*", OUT / "memory-empty.log")
    empty.start()
    time.sleep(8)
    assert empty.pid is not None
    rss_empty = rss_kib(empty.pid)
    empty.stop()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(make, range(finished_runs)))
    full = OperatorProcess("bench-*", OUT / "memory-full.log")
    full.start()
    time.sleep(8 + finished_runs / 500)
    assert full.pid is not None
    rss_full = rss_kib(full.pid)
    full.stop()
    client.CoreV1Api().delete_namespace(ns)
    return {
        "finished_runs": finished_runs,
        "operator_rss_mib_empty": round(rss_empty / 1024, 1),
        "operator_rss_mib_with_finished_runs": round(rss_full / 1024, 1),
        "rss_kib_per_finished_run": round((rss_full - rss_empty) / finished_runs, 2),
    }


def bench_argo(base_image: str, floor_running: float, args: argparse.Namespace) -> dict[str, Any]:
    from tests.bench import argo

    ns = namespace("bench-argo")
    peer = argo.ArgoPeer()
    peer.install(ns)
    try:
        singles = [argo.run_chains(ns, 1, image=base_image) for _ in range(args.single_runs)]
        many = argo.run_chains(ns, args.runs, image=base_image)
        return {
            "chain_1": table.argo_chain_figures(singles, floor_running),
            "chain_20": table.argo_chain_figures([many], floor_running),
            "trigger": {"event_to_first_pod_ms": argo.trigger_latency(ns, args.trigger_tries)},
            "settings": getattr(argo, "SETTINGS", {}),
        }
    finally:
        peer.stop()
        client.CoreV1Api().delete_namespace(ns)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="chains in flight at once")
    parser.add_argument("--single-runs", type=int, default=5, help="chains run one at a time")
    parser.add_argument("--floor-tries", type=int, default=10)
    parser.add_argument("--trigger-tries", type=int, default=10)
    parser.add_argument("--finished-runs", type=int, default=2000)
    parser.add_argument("--no-peers", action="store_true", help="kubehatch only")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    ensure_cluster()
    images = kubehatch_images()
    image = e2e_image()
    base = images["KUBEHATCH_PYTHON_BASE_IMAGE"]
    ns = namespace("bench-floor")
    try:
        results: dict[str, Any] = {"floor": floor.measure(ns, base, args.floor_tries)}
    finally:
        client.CoreV1Api().delete_namespace(ns)
    floor_running = results["floor"]["created_to_running_ms"]["p50"] / 1000
    results["kubehatch"] = bench_kubehatch(image, floor_running, args)
    results["kubehatch"]["memory"] = bench_memory(args.finished_runs)
    if not args.no_peers and table.argo_built():
        results["argo"] = bench_argo(base, floor_running, args)
    Path(OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table.render(results))
    print(f"\nwritten to {OUT / 'results.json'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
