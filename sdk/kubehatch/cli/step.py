"""``kubehatch step``: run one step attempt inside a step pod (the operator starts it).

Cheap to import, like the step runner: ``kubehatch step`` alone comes here without the
parser (see :func:`kubehatch.cli.main`), so this imports no other subcommand's helpers.
"""

from __future__ import annotations

import gc
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
    _load_sdk()
    from kubehatch import _steprunner

    return _steprunner.main()


def _load_sdk() -> None:
    """Import what a step runs on, with the cyclic GC off, then freeze it out of the GC.

    The modules, classes and functions loaded so far (the SDK and the standard library it
    needs) live as long as the pod, yet every full collection would walk them again, the
    one at interpreter exit too: several ms of CPU in each step pod, more than importing
    some of them. Loading them leaves next to no garbage. The user's worker is loaded and
    run afterwards, with the GC as it was and none of its objects frozen.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        from kubehatch import _loader, _steprunner  # noqa: F401  (loaded, used later)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
