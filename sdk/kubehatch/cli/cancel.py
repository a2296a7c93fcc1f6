"""``kubehatch cancel RUN``: stop a run (equivalent to setting spec.cancel: true)."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import NAMESPACE, RUN, arg, arguments, client

NAME = "cancel"
HELP = "cancel a run: its step pods get SIGTERM and the run ends Cancelled"

configure = arguments(
    RUN,
    arg("--wait", action="store_true", help="wait until the run is Cancelled"),
    NAMESPACE,
)


def run(args: argparse.Namespace) -> int:
    api = client(args)
    api.cancel(args.run)
    print(f"workflowrun/{args.run} cancel requested")
    if args.wait:
        final = api.wait(args.run, timeout=60)
        status = final.status
        phase = status.phase.value if status and status.phase else "Unknown"
        print(f"workflowrun/{args.run} {phase}")
    return 0
