"""``kubehatch get runs [WORKFLOW] [-A] [-l SELECTOR]``: the runs in a namespace, newest first."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kubehatch.api import wire
from kubehatch.cli._common import NAMESPACE, arg, arguments, client, since, span, table

NAME = "get"
HELP = "list runs (kubehatch get runs [WORKFLOW])"

configure = arguments(
    arg("what", choices=["runs"], help="what to list"),
    arg("workflow", nargs="?", help="only the runs of this Workflow"),
    arg("-o", "--output", choices=["table", "json"], default="table"),
    arg(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="the runs of every namespace (with a NAMESPACE column)",
    ),
    arg("-l", "--selector", help="only runs whose labels match, e.g. -l team=data,tier!=free"),
    NAMESPACE,
)


def run(args: argparse.Namespace) -> int:
    runs = client(args).list_runs(
        args.workflow, all_namespaces=args.all_namespaces, selector=args.selector
    )
    runs.sort(key=lambda r: r.metadata.get("creationTimestamp", ""), reverse=True)
    if args.output == "json":
        print(json.dumps([r.to_manifest() for r in runs], indent=2))
        return 0
    if not runs:
        print("no runs")
        return 0
    rows = [["NAME", "WORKFLOW", "PHASE", "PROGRESS", "STARTED", "DURATION"]]
    if args.all_namespaces:
        rows[0].insert(0, "NAMESPACE")
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
        if args.all_namespaces:
            rows[-1].insert(0, str(r.metadata.get("namespace", "")))
    parents = [_parent(r.metadata) for r in runs]
    if any(parents):  # child runs (ctx.spawn) say whose
        rows[0].append("PARENT")
        for row, parent in zip(rows[1:], parents, strict=True):
            row.append(parent or "-")
    print(table(rows))
    return 0


def _parent(metadata: dict[str, Any]) -> str | None:
    """The run that spawned a child run, from its owner reference."""
    if wire.LABEL_PARENT_RUN not in (metadata.get("labels") or {}):
        return None
    owner = wire.run_owner({"metadata": metadata})
    return owner[0] if owner is not None else None
