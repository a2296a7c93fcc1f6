"""``kubehatch schedule WORKFLOW --at TIME --input '{...}'``: one run at a given time.

Creates a WorkflowRun with spec.scheduledAt: it waits in Pending until that time and
then starts, once, even if the operator restarts in between (the run itself is the
record). A time already past starts the run at once.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime

from kubehatch.cli._common import NAMESPACE, PRIORITY, arg, arguments, client, json_object
from kubehatch.durations import parse_duration
from kubehatch.errors import KubehatchError

NAME = "schedule"
HELP = "run a workflow once at a given time"

_RELATIVE = re.compile(r"^(\+|in\s+)(?P<duration>\S+)$")


def parse_at(text: str, now: datetime) -> datetime:
    """An RFC 3339 time with a zone (2026-06-01T12:00:00Z), or +DURATION from now (+90s)."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        try:
            return now + parse_duration(relative["duration"])
        except ValueError as err:
            raise KubehatchError(f"--at {text!r}: {err}") from err
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None:
        raise KubehatchError(
            f"--at {text!r} is not a time: write RFC 3339 with a time zone, e.g. "
            "2026-06-01T12:00:00Z, or a delay from now, e.g. +30s or +1h30m"
        )
    if value.tzinfo is None:
        raise KubehatchError(
            f"--at {text!r} has no time zone; add one, e.g. {text}Z (UTC) or {text}+02:00"
        )
    return value


configure = arguments(
    arg("workflow", metavar="WORKFLOW", help="the Workflow to run"),
    arg(
        "--at",
        required=True,
        metavar="TIME",
        help="when: RFC 3339 with a zone (2026-06-01T12:00:00Z) or +DURATION (+30s, +1h30m)",
    ),
    arg("-i", "--input", default="{}", help="the run's input, a JSON object, or @FILE"),
    arg("--name", help="the run's name (default: generated); the same name never runs twice"),
    PRIORITY,
    NAMESPACE,
)


def run(args: argparse.Namespace) -> int:
    current = datetime.now(UTC)
    when = parse_at(args.at, current)
    data = json_object(args.input, "--input")
    name = client(args).run(
        args.workflow, data, name=args.name, scheduled_at=when, priority=args.priority
    )
    print(f"workflowrun/{name} scheduled for {when.astimezone(UTC).isoformat()}")
    if when <= current:
        print(f"note: {args.at} is in the past; the run starts at once", file=sys.stderr)
    return 0
