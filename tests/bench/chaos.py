"""`python -m tests.bench.chaos`: the chaos scenario at full size, with a summary table.

100 runs of a three-step chain (and 10 runs of a workflow limited to one run at a time)
while the operator is SIGKILLed at random moments every 2-5 s and restarted at once;
then the guarantees of tests/e2e/test_guarantees.py are checked: every run Succeeded with
the right outputs, one Job per step attempt, attempts as the status says, no status
transition backwards, never two running step pods of the limited workflow.

Results go to _output/bench/chaos.json. Unlike the other benchmarks this one judges: it
exits 1 when a guarantee is broken. The seed of the kill times is printed and can be
passed back with --seed (the cluster's timing still varies).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from kubernetes import client

from tests.bench.__main__ import ensure_cluster
from tests.e2e.images import e2e_image
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.support import REPO_ROOT
from tests.e2e.test_guarantees import ChaosResult, chaos_scenario, make_namespace

NAMESPACES = "chaosbench-*"
"""Watched by this benchmark's operator only (`make bench`'s own uses bench-*)."""

GUARANTEES = (
    "every run Succeeded",
    "outputs right",
    "one Job per step attempt",
    "one Job per step attempt (watched)",
    "Jobs match the attempts in status",
    "no attempt without a failure",
    "status never goes backwards",
    "at most 1 run of the limited workflow with running pods",
)


def table(result: ChaosResult, seed: int) -> str:
    rows = [
        ("runs (chains + limited)", f"{result.runs} + {result.limited_runs}"),
        ("succeeded", f"{result.succeeded} / {result.runs + result.limited_runs}"),
        ("wall time", f"{result.wall_seconds} s"),
        ("operator SIGKILLs", str(result.kills)),
        ("kill seed", str(seed)),
        ("slowest handoff (parent end to child start)", f"{result.slowest_handoff} s"),
        ("limited: most runs with running pods at once", str(result.max_limited_running)),
        ("limited: pod samples (every 200 ms)", str(result.pod_samples)),
    ]
    problems = result.report.problems
    for guarantee in (*GUARANTEES, *(g for g in problems if g not in GUARANTEES)):
        found = problems.get(guarantee, [])
        rows.append((guarantee, f"BROKEN ({len(found)})" if found else "held"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{'':-<{width + 2}}+{'':-<26}"]
    lines += [f"{name:<{width}}  | {value}" for name, value in rows]
    return "\n".join([lines[0], *lines[1:9], lines[0], *lines[9:], lines[0]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.chaos", description=__doc__)
    parser.add_argument("--runs", type=int, default=100, help="chain runs (default 100)")
    parser.add_argument("--limited-runs", type=int, default=10, help="runs of the limited one")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each step sleeps")
    parser.add_argument("--min-interval", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--max-interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=1800, help="for all runs to finish")
    parser.add_argument("--seed", type=int, default=None, help="of the kill times")
    args = parser.parse_args(argv)
    out = REPO_ROOT / "_output" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    ensure_cluster()
    image = e2e_image()
    namespace = make_namespace("chaosbench")
    operator = OperatorProcess(NAMESPACES, out / "chaos-operator.log")
    operator.start()
    seed = args.seed if args.seed is not None else int(time.time())
    print(f"chaos: {args.runs} + {args.limited_runs} runs in {namespace}, kill seed {seed}")
    try:
        result = chaos_scenario(
            namespace,
            image,
            operator,
            runs=args.runs,
            limited_runs=args.limited_runs,
            sleep=args.sleep,
            timeout=args.timeout,
            interval=(args.min_interval, args.max_interval),
            seed=seed,
        )
    finally:
        operator.stop()
    print(table(result, seed))
    if result.report.problems:
        print(result.report.text(limit=5))
    summary: dict[str, Any] = {
        "runs": result.runs,
        "limited_runs": result.limited_runs,
        "succeeded": result.succeeded,
        "wall_seconds": result.wall_seconds,
        "operator_kills": result.kills,
        "slowest_handoff_seconds": result.slowest_handoff,
        "kill_seed": seed,
        "limited_max_runs_with_running_pods": result.max_limited_running,
        "limited_pod_samples": result.pod_samples,
        "broken": {g: len(p) for g, p in result.report.problems.items()},
        "examples": {g: p[:5] for g, p in result.report.problems.items()},
    }
    (out / "chaos.json").write_text(json.dumps(summary, indent=2) + "\n")
    client.CoreV1Api().delete_namespace(namespace, propagation_policy="Background")
    return 1 if result.report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
