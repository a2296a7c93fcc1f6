"""``kubehatch wait RUN``: follow an existing run to its end, printing each step transition."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import add_namespace, client
from kubehatch.cli.run import follow

NAME = "wait"
HELP = "follow a run until it finishes, printing each step transition (exit 1 unless it succeeded)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="name of the WorkflowRun")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
    add_namespace(parser)


def run(args: argparse.Namespace) -> int:
    return follow(client(args), args.run, args.timeout)
