"""``kubehatch step``: run one step attempt inside a step pod (the operator starts it).

Cheap to import, like the step runner: ``kubehatch step`` alone comes here without the
parser (see :func:`kubehatch.cli.main`), so this imports no other subcommand's helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

NAME = "step"
HELP = "Run one step inside a step pod (started by the operator, not by hand)."
TRACEBACKS = True  # in a pod, where nobody can rerun it with --debug
EPILOG = "Reads KUBEHATCH_* environment variables set by the operator."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG


def run(args: argparse.Namespace | None = None) -> int:
    """The step attempt's exit status; ``args`` is None when the parser was skipped."""
    from kubehatch._steprunner import main

    return main()
