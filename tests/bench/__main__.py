"""`make bench`: what a user feels, kubehatch beside Argo Workflows on the same cluster.

1. The pod floor: a bare Job's creation to its container running, stopped, and Complete.
   The loaded floor: 20 chains of 5 bare Jobs at once, driven by a pod watch alone, timed
   as the engines' chains are (the cluster's own contention, with no engine).
2. A 5-step chain of no-op steps, 1 run at a time and 20 in flight: wall time, and each
   step's gap (parent's container stopped to child's container running) and overhead
   (the gap minus the floor's creation-to-running).
3. Trigger latency: an event (kubehatch: a WorkflowEvent; Argo: a Workflow created) to
   the first step pod on a watch.
4. kubehatch's API writes per step (its own counter) and memory with N finished runs.
5. The pool row: the same chain on a WorkerPool of two warm workers and in Jobs, 20 runs
   in flight, step to step (`tests/bench/pools.py`; `--only pool` runs it alone).

Argo runs when it is built (`make bench-peers`); `--no-peers` skips it. Results are
printed as one table and written to _output/bench/results.json. Figures from this
2-core machine are what the notes report; nothing here asserts a threshold.
`--only loaded-floor` (or `floor,loaded-floor`) runs just those phases, in under a minute,
and writes _output/bench/only.json instead.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.bench import chains, cpumeter, floor, pools, table
from tests.bench.common import (
    OUT,
    cpu_seconds,
    ensure_cluster,
    namespace,
    rss_kib,
    scrape,
    serving,
    summary_ms,
)
from tests.bench.podclock import PodClock
from tests.e2e import kube
from tests.e2e.images import e2e_image, kubehatch_images
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.support import BASE_IMAGE, wait_for

METRICS_PORT = 19090
EVENT_KEY = "bench:go"
ONLY_PHASES = ("floor", "loaded-floor", "pool")

__all__ = ["ensure_cluster", "namespace"]  # what tests.bench.scale borrows


def bench_kubehatch(
    image: str, floor_running: float, loaded_floor: float | None, args: argparse.Namespace
) -> dict[str, Any]:
    ns = namespace()
    chains.install(ns, image, events=(EVENT_KEY,))
    op = OperatorProcess(
        "bench-*", OUT / "operator.log", env={"KUBEHATCH_METRICS_PORT": str(METRICS_PORT)}
    )
    op.start()
    try:
        wait_for(lambda: serving(METRICS_PORT), 30, "the operator's metrics endpoint")
        results: dict[str, Any] = {}
        chains.run_chains(ns, 1)  # the namespace's first pods are not timed
        singles = [chains.run_chains(ns, 1) for _ in range(args.single_runs)]
        results["chain_1"] = chains.figures(singles, floor_running)
        before, op_pid = scrape(METRICS_PORT), op.pid or 0
        cpu, components = cpu_seconds(op_pid), cpumeter.sample()
        many = chains.run_chains(ns, args.runs)
        results["cpu_ms_per_step"] = cpumeter.per_step_ms(
            components, cpumeter.sample(), args.runs * len(chains.CHAIN)
        )
        results["chain_20"] = chains.figures([many], floor_running, loaded_floor)
        after = scrape(METRICS_PORT)
        writes = {
            k.split("{", 1)[1].rstrip("}"): after[k] - before.get(k, 0)
            for k in after
            if k.startswith("kubehatch_api_writes_total{") and after[k] > before.get(k, 0)
        }
        steps = args.runs * len(chains.CHAIN)
        results["api_writes_per_step"] = round(sum(writes.values()) / steps, 2)
        results["operator_cpu_seconds_chain_20"] = round(cpu_seconds(op_pid) - cpu, 2)
        results["api_writes_by_kind"] = writes
        results["trigger"] = chains.trigger_latency(ns, EVENT_KEY, args.trigger_tries)
        results["submit"] = chains.submit_latency(ns, args.trigger_tries)
        return results
    finally:
        op.stop()
        client.CoreV1Api().delete_namespace(ns)


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


def bench_floor(image: str, tries: int) -> dict[str, Any]:
    """The pod floor, one bare Job at a time, in a namespace of its own."""
    ns = namespace("bench-floor")
    try:
        return floor.measure(ns, image, tries)
    finally:
        client.CoreV1Api().delete_namespace(ns)


def bench_loaded_floor(image: str, floor_running: float | None, runs: int) -> dict[str, Any]:
    """The 20-chain phase's pods with no engine, in a namespace of its own whose first pod
    (its ServiceAccount, the image on a fresh node) is not timed, as in the engines' phases."""
    ns = namespace("bench-loaded")
    try:
        floor.measure_chains(ns, image, floor_running, runs=1, steps=1)
        before = cpumeter.sample()
        results = floor.measure_chains(ns, image, floor_running, runs, len(chains.CHAIN))
        steps = runs * len(chains.CHAIN)
        return {
            **results,
            "cpu_ms_per_step": cpumeter.per_step_ms(before, cpumeter.sample(), steps),
        }
    finally:
        client.CoreV1Api().delete_namespace(ns)
        # Its 100 Jobs and pods are gone before the engines' phases, not deleted under them.
        wait_for(lambda: _gone(ns), 180, f"namespace {ns} deleted")


def _gone(ns: str) -> bool:
    try:
        client.CoreV1Api().read_namespace(ns)
    except client.ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def bench_argo(
    floor_running: float, loaded_floor: float | None, args: argparse.Namespace
) -> dict[str, Any]:
    """The same chains and triggers with Argo's controller (a host process, as ours)."""
    from tests.bench import argo

    ns = f"bench-argo-{uuid.uuid4().hex[:6]}"
    peer = argo.ArgoPeer(env={"DEFAULT_REQUEUE_TIME": args.argo_requeue})
    peer.install(ns)
    try:
        argo.run_chains(ns, 1, 1)  # the namespace's first pod (token, image) is not timed
        singles = [_argo_chains(ns, 1) for _ in range(args.single_runs)]
        before, cpu, components = peer.api_requests(), peer.cpu_seconds(), cpumeter.sample()
        many = _argo_chains(ns, args.runs)
        used = cpumeter.per_step_ms(components, cpumeter.sample(), args.runs * len(chains.CHAIN))
        requests = peer.api_requests() - before
        trigger = [s for s in argo.trigger_latency(ns, args.trigger_tries)]
        return {
            "chain_1": chains.figures([table.argo_samples(r) for r in singles], floor_running),
            "chain_20": chains.figures([table.argo_samples(many)], floor_running, loaded_floor),
            "api_requests_per_step": round(requests / (args.runs * len(chains.CHAIN)), 2),
            "controller_cpu_seconds_chain_20": round(peer.cpu_seconds() - cpu, 2),
            "cpu_ms_per_step": used,
            # Argo has no events of its own: a submission is what its users' sensors make.
            "trigger": {"tries": len(trigger), "event_to_first_pod_ms": summary_ms(trigger)},
            "submit": {"tries": len(trigger), "run_to_first_pod_ms": summary_ms(trigger)},
            "settings": {**argo.SETTINGS, "env": peer.env},
        }
    finally:
        peer.stop()
        client.CoreV1Api().delete_namespace(ns)


def _argo_chains(ns: str, runs: int) -> list[dict[str, Any]]:
    """Argo's chains timed by the same pod clock as ours: its `main` containers' starts."""
    from tests.bench import argo

    clock = PodClock(ns)
    clock.start_watching()
    try:
        results = argo.run_chains(ns, runs, len(chains.CHAIN))
    finally:
        clock.stop()
    timed = []
    for run in results:
        pods = [clock.pods.get(node["pod"]) for node in run["nodes"]]
        first = pods[0] if pods else None
        submitted = first.seen - run["nodes"][0]["pod_seen_s"] if first else 0.0
        timed.append(
            {
                "created": submitted,
                "wall_seconds": run["wall_seconds"],
                "phase": run["phase"],
                "nodes": [{"running": p.running.get("main") if p else None} for p in pods],
            }
        )
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="chains in flight at once")
    parser.add_argument("--single-runs", type=int, default=5, help="chains run one at a time")
    parser.add_argument("--floor-tries", type=int, default=10)
    parser.add_argument("--trigger-tries", type=int, default=10)
    parser.add_argument("--finished-runs", type=int, default=2000)
    parser.add_argument("--no-peers", action="store_true", help="kubehatch only")
    parser.add_argument(
        "--argo-requeue", default="1s",
        help="Argo's DEFAULT_REQUEUE_TIME: 1s, the least its source allows (its default: 10s)",
    )  # fmt: skip
    parser.add_argument(
        "--only", type=lambda v: [p for p in v.split(",") if p], default=[],
        help=f"run only these phases ({','.join(ONLY_PHASES)}), print them and write "
        "_output/bench/only.json (results.json is left alone)",
    )  # fmt: skip
    args = parser.parse_args()
    if unknown := set(args.only) - set(ONLY_PHASES):
        parser.error(f"--only: unknown phases {sorted(unknown)}; known: {ONLY_PHASES}")
    OUT.mkdir(parents=True, exist_ok=True)
    ensure_cluster(crds=not args.only or "pool" in args.only)
    if args.only:
        only(args)
        return
    images = kubehatch_images()
    image = e2e_image()
    base = images["KUBEHATCH_PYTHON_BASE_IMAGE"]
    results: dict[str, Any] = {"floor": bench_floor(base, args.floor_tries)}
    floor_running = results["floor"]["created_to_running_ms"]["p50"] / 1000
    results["floor_chain_20"] = bench_loaded_floor(base, floor_running, args.runs)
    loaded_floor = _p50_seconds(results["floor_chain_20"])
    results["kubehatch"] = bench_kubehatch(image, floor_running, loaded_floor, args)
    results["kubehatch"]["memory"] = bench_memory(args.finished_runs)
    results["pool"] = pools.measure(image, args.runs)
    if not args.no_peers and table.argo_built():
        results["argo"] = bench_argo(floor_running, loaded_floor, args)
    Path(OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table.render(results))
    print(f"\n{pools.render(results['pool'])}")
    print(f"\nwritten to {OUT / 'results.json'}")


def only(args: argparse.Namespace) -> None:
    """Some phases alone, quickly. The python-base image by the fixed tag the cluster's
    own images are loaded with: nothing is built (a build would rewrite images.env)."""
    results: dict[str, Any] = {}
    floor_running: float | None = None
    if "floor" in args.only:
        results["floor"] = bench_floor(BASE_IMAGE, args.floor_tries)
        floor_running = results["floor"]["created_to_running_ms"]["p50"] / 1000
    if "loaded-floor" in args.only:
        results["floor_chain_20"] = bench_loaded_floor(BASE_IMAGE, floor_running, args.runs)
    if "pool" in args.only:
        results["pool"] = pools.measure(e2e_image(), args.runs)
        print(pools.render(results["pool"]))
    Path(OUT / "only.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"\n{table.render_floors(results)}\n\nwritten to {OUT / 'only.json'}")


def _p50_seconds(loaded: dict[str, Any]) -> float | None:
    """The loaded floor's step start-to-start p50, what the engines' gaps are set against."""
    p50 = loaded.get("step_start_to_start_ms", {}).get("p50")
    return None if p50 is None else p50 / 1000


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
