"""``kubehatch cancel RUN``: stop a run (equivalent to setting spec.cancel: true)."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import add_namespace, client

NAME = "cancel"
HELP = "cancel a run: its step pods get SIGTERM and the run ends Cancelled"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="name of the WorkflowRun")
    parser.add_argument("--wait", action="store_true", help="wait until the run is Cancelled")
    add_namespace(parser)


def run(args: argparse.Namespace) -> int:
    api = client(args)
    api.cancel(args.run)
    print(f"workflowrun/{args.run} cancel requested")
    if args.wait:
        final = api.wait(args.run, timeout=60)
        print(f"workflowrun/{args.run} {final.status.phase.value}")
    return 0
