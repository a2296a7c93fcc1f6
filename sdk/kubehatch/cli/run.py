"""``kubehatch run WORKFLOW --input '{...}' [--wait]``: start a run, and follow it."""

from __future__ import annotations

import argparse
import sys
import time

from kubehatch.cli._common import add_namespace, client, json_object

NAME = "run"
HELP = "start a run of a workflow; --wait follows it step by step to the end"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", help="name of the Workflow")
    parser.add_argument("--input", default="{}", help="the run's input, a JSON object")
    parser.add_argument("--name", help="name of the run (default: generated)")
    parser.add_argument("--wait", action="store_true", help="follow the run until it finishes")
    parser.add_argument(
        "--timeout", type=float, help="with --wait: give up after this many seconds"
    )
    add_namespace(parser)


def run(args: argparse.Namespace) -> int:
    api = client(args)
    name = api.run(args.workflow, json_object(args.input, "--input"), name=args.name)
    print(f"workflowrun/{name} created")
    if not args.wait:
        return 0
    return follow(api, name, args.timeout)


def follow(api: object, name: str, timeout: float | None) -> int:
    """Print each step transition as it happens; exit 0 only if the run succeeded."""
    start = time.monotonic()

    def show(change: object) -> None:
        elapsed = time.monotonic() - start
        attempt = f" (attempt {change.attempts})" if change.attempts > 1 else ""  # type: ignore[attr-defined]
        line = f"{elapsed:6.1f}s  {change.step:<24} {change.phase}{attempt}"  # type: ignore[attr-defined]
        if change.message and change.phase not in ("Running", "Succeeded"):  # type: ignore[attr-defined]
            line += f": {change.message.splitlines()[0]}"  # type: ignore[attr-defined]
        print(line, flush=True)

    final = api.wait(name, timeout=timeout, on_step=show)  # type: ignore[attr-defined]
    status = final.status
    phase = status.phase.value if status and status.phase else "Unknown"
    print(f"workflowrun/{name} {phase} ({status.progress if status else '-'} steps succeeded)")
    if phase != "Succeeded":
        message = next((c.message for c in status.conditions if c.type == "Succeeded"), "")
        if message:
            print(message, file=sys.stderr)
        return 1
    return 0
