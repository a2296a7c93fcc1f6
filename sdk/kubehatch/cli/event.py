"""``kubehatch event push KEY --data '{...}'``: push a WorkflowEvent; ``--file FILE``: many.

Every Workflow in the namespace whose spec.triggers.events lists the key (or a
matching ``prefix*``, or a filteredEvents entry whose filter is true) gets a run with
the data as its input. A file holds one event per line, as JSON:
``{"key": "order:paid", "data": {...}, "metadata": {...}, "priority": 2}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from kubehatch._events import parse_lines, validation_problems
from kubehatch.cli._common import (
    NAMESPACE,
    PRIORITY,
    arg,
    arguments,
    client,
    json_object,
    key_values,
)
from kubehatch.errors import KubehatchError

NAME = "event"
HELP = "push an event: every workflow listening for its key gets a run"

configure_push = arguments(
    arg("key", metavar="KEY", nargs="?", help="the event key, e.g. user:created"),
    arg(
        "-f",
        "--file",
        metavar="FILE",
        help="push one event per line of FILE (JSON lines: key, data, metadata, priority; "
        "- for stdin) instead of KEY",
    ),
    arg(
        "-d",
        "--data",
        default=None,
        help="the payload, a JSON object (the runs' input), or @FILE to read it from a file",
    ),
    arg(
        "-m",
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="additional metadata copied onto the runs (repeatable)",
    ),
    PRIORITY,
    NAMESPACE,
)


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    configure_push(
        actions.add_parser(
            "push", help="create a WorkflowEvent", description="Create a WorkflowEvent."
        )
    )


def run(args: argparse.Namespace) -> int:
    if args.file is not None:
        return _push_file(args)
    if args.key is None:
        raise KubehatchError("name the event key (KEY), or give --file FILE of JSON lines")
    payload = json_object(args.data or "{}", "--data")
    metadata = key_values(args.metadata, "--metadata")
    api = client(args)
    try:
        name = api.event.push(args.key, payload, metadata=metadata, priority=args.priority)
    except ValidationError as err:  # the same checks as the API server's
        problems = validation_problems(err)
        raise KubehatchError(f"event {args.key!r} is invalid: {problems}") from err
    print(f"workflowevent/{name} pushed to namespace {api.namespace} (key {args.key})")
    return 0


def _push_file(args: argparse.Namespace) -> int:
    """Push every event of the file; one line of output per event, 1 if any failed."""
    given = [flag for flag, value in (("KEY", args.key), ("--data", args.data)) if value]
    given += ["--metadata"] if args.metadata else []
    given += ["--priority"] if args.priority is not None else []
    if given:
        raise KubehatchError(
            f"--file holds each event's key, data, metadata and priority; drop {', '.join(given)}"
        )
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except OSError as err:
        raise KubehatchError(f"--file: cannot read {args.file!r}: {err.strerror}") from err
    events = parse_lines(text)
    api = client(args)
    results = api.event.push_many(events)
    failed = 0
    for result in results:
        where, key = result.event.where, result.event.key
        if result.name is not None:
            print(f"{where}: workflowevent/{result.name} pushed (key {key})")
        else:
            failed += 1
            print(f"{where}: not pushed (key {key}): {result.error}")
    summary = f"{len(results) - failed} of {len(results)} event(s) pushed to namespace"
    print(f"{summary} {api.namespace}")
    return 1 if failed else 0
