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
message (no traceback) and exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from kubehatch.errors import KubehatchError


def subcommands() -> list[ModuleType]:
    """The subcommand modules, sorted by name."""
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if not info.name.startswith("_"):
            modules.append(importlib.import_module(f"{__name__}.{info.name}"))
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubehatch", description="Hatchet-style workflows on Kubernetes."
    )
    commands = parser.add_subparsers(title="commands", dest="command", required=True)
    for module in subcommands():
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kubehatch`` script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KubehatchError as error:
        print(f"kubehatch {args.command}: {error}", file=sys.stderr)
        return 1
