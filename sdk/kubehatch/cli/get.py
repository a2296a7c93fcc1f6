"""``kubehatch get runs [WORKFLOW]``: the runs in a namespace, newest first."""

from __future__ import annotations

import argparse
import json

from kubehatch.cli._common import NAMESPACE, arg, arguments, client, since, span, table

NAME = "get"
HELP = "list runs (kubehatch get runs [WORKFLOW])"

configure = arguments(
    arg("what", choices=["runs"], help="what to list"),
    arg("workflow", nargs="?", help="only the runs of this Workflow"),
    arg("-o", "--output", choices=["table", "json"], default="table"),
    NAMESPACE,
)


def run(args: argparse.Namespace) -> int:
    runs = client(args).list_runs(args.workflow)
    runs.sort(key=lambda r: r.metadata.get("creationTimestamp", ""), reverse=True)
    if args.output == "json":
        print(json.dumps([r.to_manifest() for r in runs], indent=2))
        return 0
    if not runs:
        print("no runs")
        return 0
    rows = [["NAME", "WORKFLOW", "PHASE", "PROGRESS", "STARTED", "DURATION"]]
    for r in runs:
        s = r.status
        duration = "-"
        if s and s.started_at and s.finished_at:
            duration = span(s.finished_at - s.started_at)
        rows.append([
            r.name, r.spec.workflow_ref.name,
            s.phase.value if s and s.phase else "Pending",
            (s.progress if s else None) or "-",
            since(s.started_at if s else None), duration,
        ])  # fmt: skip
    print(table(rows))
    return 0
