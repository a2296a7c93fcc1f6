"""``kubehatch get runs [WORKFLOW] [-A] [-l SELECTOR]``: the runs in a namespace, newest first.

``kubehatch get workflows``: the Workflows, whether they are Ready, their triggers, and the
next time of their cron schedules, each in the schedule's time zone.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from zoneinfo import ZoneInfo

from kubehatch.api import wire
from kubehatch.api.triggerspec import zone_problem
from kubehatch.cli._common import NAMESPACE, arg, arguments, client, since, span, table

NAME = "get"
HELP = "list runs (kubehatch get runs [WORKFLOW]) or workflows (kubehatch get workflows)"

configure = arguments(
    arg("what", choices=["runs", "workflows", "wf"], help="what to list"),
    arg("workflow", nargs="?", help="only the runs of this Workflow (or only this Workflow)"),
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
    if args.what != "runs":
        return _workflows(args)
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


def next_cron_time(status: dict[str, Any]) -> str:
    """The soonest time of the Workflow's cron schedules, written in its schedule's zone
    (status.cronSchedules keeps each time with its zone's offset), e.g.
    ``Mon 2026-03-30 09:00 CEST (Europe/Paris, 0 9 * * 1-5)``."""
    found = []
    for entry in status.get("cronSchedules") or []:
        zone = str(entry.get("timeZone") or "UTC")
        for text in (entry.get("nextTimes") or [])[:1]:
            moment = wire.parse_time(text)
            if moment is not None:
                found.append((moment, zone, str(entry.get("schedule", ""))))
    if not found:
        return "-"
    moment, zone, schedule = min(found, key=lambda item: item[0])
    local = moment.astimezone(ZoneInfo(zone)) if zone_problem(zone) is None else moment
    return f"{local.strftime('%a %Y-%m-%d %H:%M %Z')} ({zone}, {schedule})"


def _triggers(spec: dict[str, Any]) -> str:
    triggers = spec.get("triggers") or {}
    kinds = [
        ("event", len(triggers.get("events") or []) + len(triggers.get("filteredEvents") or [])),
        ("cron", len(triggers.get("crons") or []) + len(triggers.get("zonedCrons") or [])),
        ("time", len(triggers.get("at") or [])),
    ]
    return ", ".join(f"{n} {kind}(s)" for kind, n in kinds if n) or "-"


def _workflows(args: argparse.Namespace) -> int:
    api = client(args)
    workflows = [w for w in api._workflows() if args.workflow in (None, w["metadata"]["name"])]
    if args.output == "json":
        print(json.dumps(workflows, indent=2))
        return 0
    if not workflows:
        print("no workflows")
        return 0
    rows = [["NAME", "READY", "TRIGGERS", "NEXT"]]
    for w in sorted(workflows, key=lambda w: w["metadata"]["name"]):
        status = w.get("status") or {}
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        rows.append([
            w["metadata"]["name"], ready.get("status", "-"), _triggers(w.get("spec") or {}),
            "suspended" if (w.get("spec") or {}).get("suspend") else next_cron_time(status),
        ])  # fmt: skip
    print(table(rows))
    return 0
