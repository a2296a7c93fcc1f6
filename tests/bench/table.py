"""The side-by-side table of `make bench`, and the Argo figures put in kubehatch's terms."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.bench.chains import ChainSamples
from tests.bench.cpumeter import MACHINE

LOADED = "floor_chain_20"
"""The loaded floor's key in the results, beside "floor", "kubehatch" and "argo"."""
ROWS = [
    ("5-step chain, 1 run: wall p50", ("chain_1", "wall_ms", "p50")),
    ("5-step chain, 1 run: step overhead p50", ("chain_1", "step_overhead_ms", "p50")),
    ("5-step chain, 1 run: step overhead p99", ("chain_1", "step_overhead_ms", "p99")),
    ("5-step chain, 1 run: wall/5 - floor p50", ("chain_1", "wall_per_step_over_floor_ms", "p50")),
    ("5-step chain, 20 runs: wall p50", ("chain_20", "wall_ms", "p50")),
    ("5-step chain, 20 runs: wall p99", ("chain_20", "wall_ms", "p99")),
    (
        "5-step chain, 20 runs: wall/5 - floor p50",
        ("chain_20", "wall_per_step_over_floor_ms", "p50"),
    ),
    ("5-step chain, 20 runs: step overhead p50", ("chain_20", "step_overhead_ms", "p50")),
    ("5-step chain, 20 runs: step overhead p95", ("chain_20", "step_overhead_ms", "p95")),
    ("5-step chain, 20 runs: step overhead p99", ("chain_20", "step_overhead_ms", "p99")),
    # The loaded floor: the same 100 pods with no engine, one figure for both engines.
    *(
        (f"20 runs: loaded floor step start-to-start {p}", (LOADED, "step_start_to_start_ms", p))
        for p in ("p50", "p95", "p99")
    ),
    ("20 runs: loaded floor wall p50", (LOADED, "wall_ms", "p50")),
    *(
        (
            f"20 runs: step overhead above the loaded floor {p}",
            ("chain_20", "step_overhead_over_loaded_floor_ms", p),
        )
        for p in ("p50", "p95", "p99")
    ),
    ("submit: run (Argo: Workflow) created to pod p50", ("submit", "run_to_first_pod_ms", "p50")),
    ("submit: run (Argo: Workflow) created to pod p99", ("submit", "run_to_first_pod_ms", "p99")),
    ("trigger: event (Argo: submission) to pod p50", ("trigger", "event_to_first_pod_ms", "p50")),
    ("trigger: event (Argo: submission) to pod p99", ("trigger", "event_to_first_pod_ms", "p99")),
]
LABEL = 50
HEADER = f"{'ms':<{LABEL}}{'kubehatch':>11}{'Argo':>11}{'kh/Argo':>9}"


def argo_built() -> bool:
    """Whether `make bench-peers` has built Argo's controller (the bench then runs it)."""
    cache = Path(os.environ.get("KUBEHATCH_CACHE", Path.home() / ".cache" / "kubehatch"))
    return any(cache.glob("bin/argo-*/workflow-controller"))


def argo_samples(runs: list[dict[str, Any]]) -> ChainSamples:
    """Argo's runs as kubehatch's chain samples: wall times and start-to-start gaps."""
    samples = ChainSamples()
    for run in runs:
        samples.walls.append(run["wall_seconds"])
        samples.phases.append(run.get("phase") or "")
        before = run["created"]
        for node in run["nodes"]:
            if node.get("running") is None:
                break
            samples.gaps.append(node["running"] - before)
            before = node["running"]
    return samples


def _get(results: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = results
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def render(results: dict[str, Any]) -> str:
    lines = [render_floors(results, rows=False), "", HEADER]
    ours, theirs = results.get("kubehatch", {}), results.get("argo", {})
    for label, path in ROWS:
        if path[0] == LOADED:
            lines.append(_floor_row(label, results, path))
            continue
        kh, argo = _get(ours, path), _get(theirs, path)
        ratio = f"{kh / argo:.2f}" if kh is not None and argo else "-"
        lines.append(f"{label:<{LABEL}}{_cell(kh):>11}{_cell(argo):>11}{ratio:>9}")
    lines += _cpu_rows(results)
    if "api_writes_per_step" in ours:
        lines.append(f"\nkubehatch API writes per step: {ours['api_writes_per_step']}")
    if "memory" in ours:
        memory = ours["memory"]
        lines.append(
            f"kubehatch operator RSS: {memory['operator_rss_mib_empty']} MiB empty, "
            f"{memory['operator_rss_mib_with_finished_runs']} MiB with "
            f"{memory['finished_runs']} finished runs"
        )
    return "\n".join(lines)


def render_floors(results: dict[str, Any], rows: bool = True) -> str:
    """The pod floor's line and the loaded floor's, whichever were measured; with `rows`,
    the loaded floor's rows of the table too (`--only` prints no other)."""
    lines = []
    if floor := results.get("floor"):
        lines.append(
            "pod floor (bare Job, python3 -c pass), p50: "
            f"running {floor['created_to_running_ms'].get('p50')} ms, "
            f"container exit {floor['created_to_container_exit_ms'].get('p50')} ms, "
            f"Job Complete {floor['created_to_job_complete_ms'].get('p50')} ms"
        )
    if loaded := results.get("floor_chain_20"):
        handoff = loaded.get("driver_handoff_ms", {}).get("p50")
        lines.append(
            f"loaded floor: {loaded['runs']} chains of {loaded.get('steps')} bare Jobs at once, "
            f"{loaded['succeeded']} succeeded; driver hand-off p50 {handoff} ms"
        )
        if rows:
            lines += ["", HEADER]
            lines += [_floor_row(lbl, results, path) for lbl, path in ROWS if path[0] == LOADED]
    return "\n".join(lines)


def _floor_row(label: str, results: dict[str, Any], path: tuple[str, ...]) -> str:
    return f"{label:<{LABEL}}{_cell(_get(results, path)):>11}{'(same pods)':>13}"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _cpu_rows(results: dict[str, Any]) -> list[str]:
    """CPU per step by cluster component in the 20-run phase: the loaded floor (no engine),
    kubehatch and Argo side by side; what each engine adds is whose it is."""
    columns = {
        "loaded floor": results.get("floor_chain_20", {}).get("cpu_ms_per_step"),
        "kubehatch": results.get("kubehatch", {}).get("cpu_ms_per_step"),
        "Argo": results.get("argo", {}).get("cpu_ms_per_step"),
    }
    shown = {name: used for name, used in columns.items() if used}
    if not shown:
        return []
    components = sorted({c for used in shown.values() for c in used})
    lines = ["", f"{'20 runs: CPU ms per step':<{LABEL}}" + "".join(f"{n:>14}" for n in shown)]
    components = [c for c in components if c != MACHINE]
    for component in [*components, "sum of the above", MACHINE]:
        cells = [
            used.get(component)
            if component != "sum of the above"
            else round(sum(v for c, v in used.items() if c != MACHINE), 1)
            for used in shown.values()
        ]
        lines.append(f"{component:<{LABEL}}" + "".join(f"{_cell(c):>14}" for c in cells))
    return lines
