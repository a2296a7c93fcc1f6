"""Helpers shared by the subcommands that talk to a cluster (not a subcommand itself)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from kubehatch.errors import KubehatchError


def add_namespace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--namespace", help="namespace (default: the current kubeconfig context's)"
    )


def client(args: argparse.Namespace) -> Any:
    from kubehatch.client import Client

    return Client(namespace=args.namespace)


def json_object(text: str, flag: str) -> dict[str, Any]:
    """Parse a JSON object given on the command line, with an error that shows the fix."""
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


def span(delta: Any) -> str:
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
