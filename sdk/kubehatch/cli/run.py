"""``kubehatch run WORKFLOW --input '{...}' [--wait]``: start a run, and follow it.

The input is checked against the Workflow's ``spec.inputSchema`` before the run is
created (see :mod:`kubehatch._submit`). ``--local`` runs the workflow in this process
instead, from its worker's module (:mod:`kubehatch.cli._local`).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from kubehatch.cli._common import (
    NAMESPACE,
    PRIORITY,
    arg,
    arguments,
    client,
    json_object,
    key_values,
)
from kubehatch.errors import KubehatchError

if TYPE_CHECKING:
    from kubehatch.client import Client, StepChange

NAME = "run"
HELP = "start a run of a workflow; --wait follows it step by step to the end"

configure = arguments(
    arg("workflow", help="name of the Workflow"),
    arg("--input", default="{}", help="the run's input, a JSON object, or @FILE"),
    arg("--name", help="name of the run (default: generated)"),
    PRIORITY,
    arg(
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="additional metadata of the run (repeatable), readable by concurrency expressions",
    ),
    arg("--wait", action="store_true", help="follow the run until it finishes"),
    arg("--timeout", type=float, help="with --wait: give up after this many seconds"),
    arg(
        "--local",
        action="store_true",
        help="run it here, in this process, from the worker's module (no cluster), "
        "printing each step",
    ),
    arg(
        "-w",
        "--worker",
        metavar="MODULE:ATTR",
        help="with --local: the Worker to import (default: $KUBEHATCH_WORKER)",
    ),
    arg(
        "--event",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="with --local: an event WaitForEvent steps may take, its data a JSON object "
        "or @FILE (repeatable)",
    ),
    arg(
        "--approve",
        action="append",
        default=[],
        metavar="STEP[=COMMENT]",
        help="with --local: approve this Approval step (repeatable)",
    ),
    arg(
        "--reject",
        action="append",
        default=[],
        metavar="STEP[=COMMENT]",
        help="with --local: reject this Approval step (repeatable)",
    ),
    NAMESPACE,
)


def run(args: argparse.Namespace) -> int:
    if args.local:
        from kubehatch.cli._local import given, run_locally

        events, approvals = given(args.event, args.approve, args.reject)
        workflow_input = json_object(args.input, "--input")
        return run_locally(args.workflow, workflow_input, args.worker, events, approvals)
    if args.event or args.approve or args.reject:
        raise KubehatchError(
            "--event, --approve and --reject are for --local runs; on a cluster use "
            "kubehatch event push and kubehatch approve RUN STEP"
        )
    api = client(args)
    name = api.run(
        args.workflow,
        json_object(args.input, "--input"),
        name=args.name,
        priority=args.priority,
        additional_metadata=key_values(args.metadata, "--metadata"),
    )
    print(f"workflowrun/{name} created")
    if not args.wait:
        return 0
    return follow(api, name, args.timeout)


def follow(api: Client, name: str, timeout: float | None) -> int:
    """Print each step transition as it happens; exit 0 only if the run succeeded."""
    start = time.monotonic()

    def show(change: StepChange) -> None:
        elapsed = time.monotonic() - start
        attempt = f" (attempt {change.attempts})" if change.attempts > 1 else ""
        line = f"{elapsed:6.1f}s  {change.step:<24} {change.phase}{attempt}"
        if change.message and change.phase not in ("Running", "Succeeded"):
            line += f": {change.message.splitlines()[0]}"
        print(line, flush=True)

    final = api.wait(name, timeout=timeout, on_step=show)
    status = final.status
    phase = status.phase.value if status and status.phase else "Unknown"
    print(f"workflowrun/{name} {phase} ({status.progress if status else '-'} steps succeeded)")
    if phase != "Succeeded":
        conditions = status.conditions if status else []
        message = next((c.message for c in conditions if c.type == "Succeeded"), "")
        if message:
            print(message, file=sys.stderr)
        return 1
    return 0
