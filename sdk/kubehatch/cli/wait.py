"""``kubehatch wait RUN``: follow an existing run to its end, printing each step transition."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import NAMESPACE, RUN, arg, arguments, client
from kubehatch.cli.run import follow

NAME = "wait"
HELP = "follow a run until it finishes, printing each step transition (exit 1 unless it succeeded)"

configure = arguments(
    RUN, arg("--timeout", type=float, help="give up after this many seconds"), NAMESPACE
)


def run(args: argparse.Namespace) -> int:
    return follow(client(args), args.run, args.timeout)
