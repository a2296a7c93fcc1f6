"""The ``kubehatch`` command line.

Every public module of this package (a name not starting with "_") is a subcommand,
found at start-up, so adding one is adding one module with:

* ``NAME``: the subcommand, e.g. "render";
* ``HELP``: one line for ``kubehatch --help``;
* ``configure(parser: argparse.ArgumentParser) -> None``: add its arguments, usually
  written as a table: ``configure = arguments(RUN, arg("--wait", ...), NAMESPACE)``
  (see ``_common``);
* ``run(args: argparse.Namespace) -> int``: do the work, return the exit status.

Raise :class:`kubehatch.KubehatchError` for expected failures: ``main`` prints its
message (no traceback) and exits with status 1. Anything else is a bug: ``main`` prints
one line and "run with --debug for the traceback" (``--debug`` prints it), unless the
module sets ``TRACEBACKS = True`` (subcommands run in pods, where nobody can rerun them).
Ctrl-C exits with status 130, usage errors with 2 (argparse's).

``kubehatch step`` alone, what every step pod runs, skips the parser: building it imports
every subcommand, and with them pydantic, yaml and more, in each of possibly hundreds of pods
starting at once. It runs exactly as it would through the parser.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from kubehatch.errors import KubehatchError

if TYPE_CHECKING:
    import argparse

DEBUG_HELP = "on an unexpected error, print the Python traceback"
STEP = "step"
"""The subcommand of step pods (kubehatch.api.wire.STEP_COMMAND), dispatched directly."""


def subcommands() -> list[ModuleType]:
    """The subcommand modules, sorted by name."""
    import pkgutil

    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if not info.name.startswith("_"):
            modules.append(importlib.import_module(f"{__name__}.{info.name}"))
    return modules


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from kubehatch.cli._version import VersionAction

    parser = argparse.ArgumentParser(
        prog="kubehatch", description="Hatchet-style workflows on Kubernetes."
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(title="commands", dest="command", required=True)
    for module in subcommands():
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(handler=module.run, tracebacks=getattr(module, "TRACEBACKS", False))
        _accept_debug(sub, set())
    return parser


def _accept_debug(parser: argparse.ArgumentParser, seen: set[int]) -> None:
    """``--debug`` after the subcommand too (where users add it), nested ones included."""
    import argparse

    if id(parser) in seen:
        return
    seen.add(id(parser))
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _accept_debug(sub, seen)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kubehatch`` script."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments == [STEP]:
        from kubehatch.cli import step

        return _handle(STEP, step.run, debug=False, tracebacks=step.TRACEBACKS)
    args = build_parser().parse_args(arguments)
    return _handle(
        args.command, lambda: args.handler(args), debug=args.debug, tracebacks=args.tracebacks
    )


def _handle(command: str, handler: Callable[[], int], *, debug: bool, tracebacks: bool) -> int:
    """Run a subcommand: its exit status, and one line on stderr for an error (see above)."""
    prefix = f"kubehatch {command}:"
    try:
        return int(handler())
    except KeyboardInterrupt:
        print(f"{prefix} interrupted", file=sys.stderr)
        return 130
    except KubehatchError as error:
        if debug:
            _print_traceback()
        print(f"{prefix} {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if debug or tracebacks:
            _print_traceback()
            return 1
        first = next(iter(str(error).strip().splitlines()), "")
        what = f"{type(error).__name__}: {first}" if first else type(error).__name__
        print(
            f"{prefix} unexpected error: {what} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def _print_traceback() -> None:
    """The handled exception's traceback on stderr (``traceback`` is loaded only for it)."""
    import traceback

    traceback.print_exc()
