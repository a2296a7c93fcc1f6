"""`make bench-scale`: the operator at scale, on kwok's fake nodes (no containers run).

Phases (--phases; these four by default, in this order):
- scale: the operator restarted over 1,000 / 5,000 / 20,000 finished runs and 500 active
  ones (kwok keeps their pods Running): memory, and the time from the restart to /healthz
  answering and to a new run finishing. Finished runs are WorkflowRuns given a real
  finished run's status while no operator runs (they have no Jobs).
- admission: 500 runs arrive at once on one concurrency key (maxRuns 1, QueueNewest);
  the operator computes each key and queues them. The queue is topped up to 5,000 with
  copies of a queued run's status while the operator is stopped, the operator started
  again, and for up to 20 freed slots: the time from a run's finishedAt to the next
  run's startedAt (both stamped by the operator), the operator's CPU and reconcile passes.
- throughput: 5,000 one-step runs at once: runs finished per minute, time to drain, API
  writes per run (the operator's counters, and all clients' as the API server counts
  them), the operator's CPU seconds and peak memory. The Job controller's client rate
  limit (kube-controller-manager's --kube-api-qps, 20 by default) sets the pace.
- throughput_fake_jobs: the same, the operator's Jobs marked spec.managedBy for kwok,
  which completes them with no pod: the operator and the API server alone.
- argo_throughput (with --peers argo): the throughput phase for Argo Workflows.

Every wait is capped (--cap, --drain-timeout): a slow operator yields partial figures,
not a run past 20 minutes. A table is printed and _output/bench/scale.json written;
nothing asserts a threshold. The local cluster is brought up when $KUBECONFIG is unset.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.bench.common import OUT, cpu_seconds, ensure_cluster, rss_kib, summary_ms
from tests.bench.kwok import NODE_SELECTOR, TOLERATIONS, Kwok
from tests.bench.scale_support import (
    HOLD,
    ONE,
    SERIAL,
    apiserver_writes,
    create_runs,
    drop_namespace,
    gone_pending,
    grow,
    list_items,
    namespace,
    per_run,
    phases,
    probe_run,
    prometheus,
    rates,
    running_jobs,
    source_version,
    stamp,
    start_operator,
    waited,
    workflow,
)
from tests.e2e import kube
from tests.e2e.support import wait_for

QUICK = {
    "runs": 200, "finished": "200,1000", "active": 50, "queued": 300, "slots": 10, "arrivals": 100
}  # fmt: skip
ARGO_DONE = ("Succeeded", "Failed", "Error")
FULL = {
    "runs": 5000, "finished": "1000,5000,20000", "active": 500, "queued": 5000, "slots": 20,
    "arrivals": 500,
}  # fmt: skip


def bench_scale(levels: list[int], active: int, cap: float) -> dict[str, Any]:
    """Restarts over more and more finished runs; a level whose restart or new run takes
    longer than `cap` seconds is the last."""
    ns = namespace("restart")
    op = start_operator(ns)
    try:
        for name in (ONE, HOLD):
            kube.apply_workflow(ns, workflow(name), workflow(name)["spec"]["image"])
        probe_run(ns, "probe-0")
        template = kube.get_run(ns, "probe-0")["status"]
        create_runs(ns, HOLD, [f"active-{i}" for i in range(active)])
        # Started, their pods Running, and the Job controller done with them.
        wait_for(lambda: running_jobs(ns, HOLD) >= active, 60 + active, f"{active} active runs")
        finished, rows = 1, []
        for level in levels:
            op.kill()
            names = [f"done-{i}" for i in range(finished, level)]
            made = create_runs(ns, ONE, names, status=template)
            finished = level
            restarted = time.monotonic()
            op.start()
            healthy = waited(op.healthy, cap) and time.monotonic() - restarted
            probe = healthy and probe_run(ns, f"probe-{level}", cap)
            finished += 1
            usage = op.usage()
            rows.append({
                "finished_runs": level, "active_runs": active, "write_s": round(made, 1),
                "restart_to_healthz_s": round(healthy, 2) if healthy else None,
                "restart_to_run_done_s":
                    round(time.monotonic() - restarted, 2) if probe else None,
                "new_run_s": round(probe, 2) if probe else None,
                "cpu_s": round(usage["cpu_seconds"], 1), "rss_mib": usage["rss_mib"],
                "peak_rss_mib": usage["peak_rss_mib"],
            })  # fmt: skip
            print(f"  scale: {rows[-1]}", flush=True)
            if not probe:
                break  # more finished runs would only take longer
        return {"levels": rows}
    finally:
        op.stop()
        drop_namespace(ns)


def bench_admission(queued: int, slots: int, burst: int, cap: float) -> dict[str, Any]:
    """`burst` runs arrive at once on one key (the operator computes each key); then the
    queue is topped up to `queued` with copies of a queued run's status while the operator
    is stopped (as bench_scale does with finished runs), the operator started again, and
    up to `slots` freed slots timed. Each wait stops after `cap` seconds (then fewer)."""
    ns = namespace("admit")
    op = start_operator(ns)
    try:
        limit = {"expression": "input.key", "maxRuns": 1, "limitStrategy": "QueueNewest"}
        kube.apply_workflow(ns, workflow(SERIAL, limit), workflow(SERIAL)["spec"]["image"])
        names = [f"q-{i:05d}" for i in range(queued)]
        t0, cpu0 = time.monotonic(), op.usage()["cpu_seconds"]
        create_runs(ns, SERIAL, names[:burst], input={"key": "k"})

        def seen() -> int:
            time.sleep(1)  # a listing of thousands of runs costs this process a core
            items = list_items(ns)
            return len(items) - phases(items).get("none", 0)

        waited(lambda: seen() >= burst, cap)
        arrived, cpu, got = time.monotonic() - t0, op.usage()["cpu_seconds"] - cpu0, seen()
        print(f"  admission: {got} of {burst} arrivals queued in {arrived:.0f}s", flush=True)
        op.kill()
        items = list_items(ns)
        template = next(r["status"] for r in items if r["status"].get("phase") == "Queued")
        made = create_runs(ns, SERIAL, names[burst:], input={"key": "k"}, status=template)
        restarted = time.time()
        op.start()
        start = waited(op.healthy, cap) and op.in_flight()
        freed_first = bool(start) and waited(lambda: op.in_flight() < start, cap)
        before, usage, window = op.metrics(), op.usage(), time.time()
        start = op.in_flight()
        if freed_first:  # else the operator is still busy with its restart
            waited(lambda: start - op.in_flight() >= slots, cap)
        after, used = op.metrics(), op.usage()
        items = sorted((r for r in list_items(ns) if stamp(r, "startedAt")),
                       key=lambda r: stamp(r, "startedAt") or 0.0)  # fmt: skip
        gaps = [
            (stamp(nxt, "startedAt") or 0.0) - (stamp(cur, "finishedAt") or 0.0)
            for cur, nxt in itertools.pairwise(items)
            if stamp(cur, "finishedAt") and (stamp(nxt, "startedAt") or 0.0) >= window
        ]
        freed = (start - after["kubehatch_runs_in_flight"]) if freed_first else None
        passes = grow(before, after, "kubehatch_reconcile_seconds_count").get("", 0.0)
        cpu_slot = freed and 1000 * (used["cpu_seconds"] - usage["cpu_seconds"]) / freed
        # Admission proper: weighing the key's runs, by the freed slot and by the run let in.
        weighed = sum(grow(before, after, "kubehatch_admission_cpu_seconds_sum").values())
        weighings = grow(before, after, "kubehatch_admission_cpu_seconds_count")
        return {
            "arrivals": burst, "arrivals_queued": got, "arrivals_seconds": round(arrived, 1),
            "arrivals_operator_cpu_s": round(cpu, 1), "queued": queued,
            "seconds_to_write_queued_runs": round(made, 1),
            "restart_to_first_freed_slot_s": round(window - restarted, 1) if freed_first else None,
            "slots_measured": len(gaps),
            "freed_slot_to_next_start_ms": summary_ms(gaps),
            "admission_cpu_ms_per_freed_slot": round(1000 * weighed / freed, 2) if freed else None,
            "admissions_per_freed_slot": {k: round(v / freed, 1) for k, v in weighings.items()}
            if freed else None,
            "operator_cpu_ms_per_freed_slot": round(cpu_slot, 1) if cpu_slot else None,
            "reconcile_passes_per_freed_slot": round(passes / freed, 1) if freed else None,
            "operator_peak_rss_mib": used["peak_rss_mib"],
        }  # fmt: skip
    finally:
        op.stop()
        drop_namespace(ns)


def bench_throughput(runs: int, timeout: float, fake_jobs: bool = False) -> dict[str, Any]:
    ns = namespace("tp")
    op = start_operator(ns, fake_jobs)
    try:
        kube.apply_workflow(ns, workflow(ONE), workflow(ONE)["spec"]["image"])
        time.sleep(2)  # the operator has the Workflow before the first run arrives
        before, cluster_before, usage = op.metrics(), apiserver_writes(), op.usage()
        t0 = time.time()
        submitted = create_runs(ns, ONE, [f"tp-{i:05d}" for i in range(runs)])

        def drained() -> bool:
            return op.in_flight() == 0 and time.time() > t0 + 5

        try:
            wait_for(drained, timeout, f"{runs} runs to finish")
        except AssertionError:
            print(f"  throughput: not drained after {timeout:.0f}s; measuring what finished")
        window, after, used = time.time() - t0, op.metrics(), op.usage()
        cluster = grow(cluster_before, apiserver_writes(), "")
        items = list_items(ns)
        writes = grow(before, after, "kubehatch_api_writes_total")
        reads = grow(before, after, "kubehatch_api_reads_total")
        finished = [t for t in (stamp(r, "finishedAt") for r in items) if t is not None]
        passes = grow(before, after, "kubehatch_reconcile_seconds_count").get("", 0.0)
        # Per submitted run: exact once drained, a floor while some are in flight.
        n, cpu = runs, used["cpu_seconds"] - usage["cpu_seconds"]
        return {
            "runs": runs, "phases": phases(items), "submit_seconds": round(submitted, 1),
            **rates(t0, finished, runs, window),
            "operator_api_writes_per_run": round(sum(writes.values()) / n, 2),
            "operator_api_reads_per_run": round(sum(reads.values()) / n, 3) if reads else None,
            "operator_writes_per_run": per_run(writes, n),
            "cluster_api_writes_per_run": round(sum(cluster.values()) / n, 2),
            "cluster_writes_per_run": per_run(cluster, n),
            "operator_cpu_seconds": round(cpu, 1),
            "operator_cpu_ms_per_run": round(1000 * cpu / n, 1),
            "operator_peak_rss_mib": used["peak_rss_mib"],
            "reconcile_passes_per_run": round(passes / n, 2),
        }  # fmt: skip
    finally:
        op.stop()
        drop_namespace(ns)


def argo_workflow(name: str) -> dict[str, Any]:
    """One step for Argo, on kwok's nodes, as kubehatch's one-step run."""
    from tests.bench import argo

    container = {"image": "localhost/kwok-never-pulled:1", "command": ["true"],
                 "securityContext": argo.CONTAINER_SECURITY}  # fmt: skip
    return {
        "apiVersion": f"{argo.GROUP}/{argo.VERSION}", "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "main", "serviceAccountName": argo.SERVICE_ACCOUNT,
            "securityContext": argo.POD_SECURITY, "nodeSelector": NODE_SELECTOR,
            "tolerations": TOLERATIONS, "templates": [{"name": "main", "container": container}],
        },
    }  # fmt: skip


def bench_argo(runs: int, timeout: float) -> dict[str, Any]:
    """The throughput phase for Argo's workflow-controller (tests/bench/argo.py's peer)."""
    from tests.bench import argo

    ns, peer = f"scale-argo-{uuid.uuid4().hex[:6]}", argo.ArgoPeer(OUT)
    try:
        peer.install(ns)
        pid = peer.pid or 0
        requests, cluster_before, cpu0 = peer.api_requests(), apiserver_writes(), cpu_seconds(pid)
        t0 = time.time()
        names = [f"tp-{i:05d}" for i in range(runs)]
        submitted = create_runs(ns, "", names, plural="workflows", body=argo_workflow)

        def done() -> bool:
            gauge = prometheus(peer.metrics_text())
            ended = [v for k, v in gauge.items() if k.startswith("argo_workflows_gauge{")
                     and any(f'phase="{p}"' in k for p in ARGO_DONE)]  # fmt: skip
            return sum(ended) >= runs

        try:
            wait_for(done, timeout, f"{runs} Argo workflows to finish")
        except AssertionError:
            print(f"  argo: not drained after {timeout:.0f}s; measuring what finished")
        window, items = time.time() - t0, list_items(ns, "workflows", argo.GROUP)
        finished = [t for t in (stamp(r, "finishedAt") for r in items) if t is not None]
        count = runs  # per submitted run, as for kubehatch
        cluster = grow(cluster_before, apiserver_writes(), "")
        return {
            "runs": runs, "phases": phases(items), "submit_seconds": round(submitted, 1),
            **rates(t0, finished, runs, window),
            "controller_api_requests_per_run": round((peer.api_requests() - requests) / count, 2),
            "cluster_api_writes_per_run": round(sum(cluster.values()) / count, 2),
            "cluster_writes_per_run": per_run(cluster, count),
            "controller_cpu_seconds": round(cpu_seconds(pid) - cpu0, 1),
            "controller_cpu_ms_per_run": round(1000 * (cpu_seconds(pid) - cpu0) / count, 1),
            "controller_peak_rss_mib": round(rss_kib(pid, "VmHWM") / 1024, 1),
        }  # fmt: skip
    finally:
        peer.stop()
        drop_namespace(ns)


def table(results: dict[str, Any]) -> str:
    """One block per phase: `name  value` lines; the scale levels as columns."""

    def shown(value: Any) -> str:
        return json.dumps(value) if isinstance(value, dict | list) else str(value)

    lines = []
    for phase, figures in results.items():
        if not isinstance(figures, dict):
            lines.append(f"\n{phase}: {figures}")
            continue
        lines.append(f"\n{phase}")
        rows = figures.get("levels", [])
        if rows:
            keys = list(rows[0])
            widths = [max(len(k), *(len(shown(r.get(k))) for r in rows)) for k in keys]
            for row in [dict(zip(keys, keys, strict=True)), *rows]:
                cells = (shown(row.get(k)).rjust(w) for k, w in zip(keys, widths, strict=True))
                lines.append("  " + "  ".join(cells))
        lines += [f"  {k:<36} {shown(v)}" for k, v in figures.items() if k != "levels"]
    return "\n".join(lines)


PHASES: dict[str, Callable[[dict[str, Any], argparse.Namespace], dict[str, Any]]] = {
    "scale": lambda s, a: bench_scale(
        [int(n) for n in str(s["finished"]).split(",")], s["active"], a.cap
    ),
    "admission": lambda s, a: bench_admission(s["queued"], s["slots"], s["arrivals"], a.cap),
    "throughput": lambda s, a: bench_throughput(s["runs"], a.drain_timeout),
    "throughput_fake_jobs": lambda s, a: bench_throughput(s["runs"], a.drain_timeout, True),
    "argo_throughput": lambda s, a: bench_argo(s["runs"], a.drain_timeout),
}


def settle(cap: float = 300.0) -> float:
    """Wait for the earlier phases' namespaces to be deleted (at most ``cap`` seconds): the
    namespace controller, the garbage collector and kwok deleting 20,000 runs and their
    pods would otherwise be measured as the next phase's slowness. Returns the wait."""
    started = time.monotonic()
    while gone_pending() and time.monotonic() - started < cap:
        time.sleep(1)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.scale", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="hundreds of runs, not thousands")
    parser.add_argument("--runs", type=int, help="throughput runs (5000; quick 200)")
    parser.add_argument("--finished", help="finished-run levels (1000,5000,20000; quick 200,1000)")
    parser.add_argument("--active", type=int, help="active runs during restarts (500; quick 50)")
    parser.add_argument("--queued", type=int, help="runs queued on one key (5000; quick 300)")
    parser.add_argument("--slots", type=int, help="freed slots measured (20; quick 10)")
    parser.add_argument("--arrivals", type=int, help="of the queued, arriving at once (500; 100)")
    parser.add_argument("--drain-timeout", type=float, default=120.0,
                        help="seconds to wait for the throughput runs to drain")  # fmt: skip
    parser.add_argument("--cap", type=float, default=90.0, help="seconds any one wait of the "
                        "scale and admission phases may take")  # fmt: skip
    parser.add_argument(
        "--clean",
        action="store_true",
        help="only delete what a killed run left: scale-* namespaces, fake nodes",
    )
    parser.add_argument("--nodes", type=int, default=10, help="kwok fake nodes")
    parser.add_argument(
        "--phases", default="scale,admission,throughput_fake_jobs",
        help="also 'throughput': real Jobs, which the Job controller's client limit caps",
    )  # fmt: skip
    parser.add_argument(
        "--peers", default="argo", help="'argo' (default): Argo's throughput too; '' skips it"
    )
    args = parser.parse_args()
    sizes = {k: v if getattr(args, k) is None else getattr(args, k)
             for k, v in (QUICK if args.quick else FULL).items()}  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    ensure_cluster()
    results: dict[str, Any] = {}
    path = OUT / "scale.json"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on `timeout` too
    phases = [p for p in args.phases.split(",") if p]
    phases += ["argo_throughput"] if "argo" in args.peers.split(",") else []
    owners = ("Job", "Workflow") if "argo_throughput" in phases else ("Job",)
    results["operator_source"] = source_version()
    with Kwok(OUT / "kwok", nodes=args.nodes, hold=[HOLD], owners=owners):
        try:
            for ns in client.CoreV1Api().list_namespace().items if args.clean else []:
                if ns.metadata.name.startswith("scale-"):  # kwok runs: their pods can go
                    drop_namespace(ns.metadata.name)
            for phase in [] if args.clean else phases:
                waited = settle()
                started, apiserver = time.monotonic(), apiserver_writes()["started"]
                print(f"{phase} ... (after {waited:.0f}s for earlier namespaces to go)", flush=True)
                results[phase] = PHASES[phase](sizes, args)
                results[phase]["phase_seconds"] = round(time.monotonic() - started)
                results[phase]["waited_for_earlier_namespaces_s"] = round(waited)
                # Others' tests on a shared machine show here (2 cores: above 2 is a queue).
                results[phase]["load_average_1m_5m"] = [round(x, 1) for x in os.getloadavg()[:2]]
                if apiserver_writes()["started"] != apiserver:  # a chaos test, say
                    results[phase]["warning"] = "the API server restarted during this phase"
                path.write_text(json.dumps(results, indent=2) + "\n")
        finally:
            wait_for(lambda: not gone_pending(), 600, "the benchmark's namespaces to go")
    if args.clean:
        return
    results["sizes"] = {**sizes, "kwok_nodes": args.nodes}
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
