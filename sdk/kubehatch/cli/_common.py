"""Helpers shared by the subcommands (not a subcommand itself).

A subcommand's arguments are a table, most of them::

    configure = arguments(RUN, arg("--wait", action="store_true", help="..."), NAMESPACE)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubehatch.errors import KubehatchError

if TYPE_CHECKING:
    from kubehatch.client import Client


@dataclass(frozen=True, eq=False)
class Arg:
    """One ``parser.add_argument(*flags, **options)`` call, as data."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


RUN = arg("run", help="name of the WorkflowRun")
NAMESPACE = arg("-n", "--namespace", help="namespace (default: the current kubeconfig context's)")
PRIORITY = arg(
    "--priority",
    type=int,
    choices=(1, 2, 3),
    help="1 (low) to 3 (high): queued runs of higher priority start first "
    "(default: the Workflow's defaultPriority)",
)


def arguments(*table: Arg, epilog: str | None = None) -> Callable[[argparse.ArgumentParser], None]:
    """A ``configure`` that adds the arguments of ``table``, in order (and the epilog)."""

    def configure(parser: argparse.ArgumentParser) -> None:
        for argument in table:
            parser.add_argument(*argument.flags, **argument.options)
        if epilog is not None:
            parser.epilog = epilog

    return configure


def client(args: argparse.Namespace) -> Client:
    from kubehatch.client import Client

    return Client(namespace=args.namespace)


RUNS = arg("run", nargs="?", help="name of the WorkflowRun (or -l for many)")
RUN_SELECTOR = arg(
    "-l",
    "--selector",
    help="act on every run whose labels match, e.g. -l kubehatch.dev/workflow=etl",
)


def selected_runs(api: Client, args: argparse.Namespace) -> list[str]:
    """The run named, or those ``-l`` selects (exactly one of the two must be given)."""
    if (args.run is None) == (args.selector is None):
        raise KubehatchError("name one run, or select runs with -l LABEL=VALUE (not both)")
    if args.run is not None:
        return [str(args.run)]
    names = [str(r.metadata.get("name")) for r in api.list_runs(selector=args.selector)]
    if not names:
        raise KubehatchError(f"no run in namespace {api.namespace!r} matches -l {args.selector}")
    return names


def for_each_run(args: argparse.Namespace, act: Callable[[Client, str], Any], done: str) -> int:
    """Do ``act`` to the run named or to each run ``-l`` selects, saying ``done`` of each."""
    api = client(args)
    for name in selected_runs(api, args):
        act(api, name)
        print(f"workflowrun/{name} {done}")
    return 0


def key_values(pairs: list[str], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a mapping; an error names the option and the fix."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise KubehatchError(f"{flag} {pair!r}: write KEY=VALUE, e.g. {flag} source=signup")
        result[key] = value
    return result


def json_object(text: str, flag: str) -> dict[str, Any]:
    """A JSON object given inline or as ``@FILE``; errors name the option and the fix."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as err:
            raise KubehatchError(f"{flag}: cannot read {str(path)!r}: {err.strerror}") from err
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise KubehatchError(
            f"{flag} is not valid JSON ({err}); write e.g. '{{\"key\": 1}}'"
        ) from err
    if not isinstance(value, dict):
        raise KubehatchError(f"{flag} must be a JSON object like '{{\"key\": 1}}'")
    return value


def since(moment: datetime | None, now: datetime | None = None) -> str:
    """A short age such as 45s, 3m12s or 2h5m (like kubectl's)."""
    if moment is None:
        return "-"
    return span((now or datetime.now(UTC)) - moment)


def span(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds}s" if minutes < 10 and seconds else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
