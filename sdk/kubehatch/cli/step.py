"""``kubehatch step``: run one step attempt inside a step pod (the operator starts it)."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import arguments

NAME = "step"
HELP = "Run one step inside a step pod (started by the operator, not by hand)."
TRACEBACKS = True  # in a pod, where nobody can rerun it with --debug

configure = arguments(epilog="Reads KUBEHATCH_* environment variables set by the operator.")


def run(args: argparse.Namespace) -> int:
    from kubehatch._steprunner import main

    return main()
