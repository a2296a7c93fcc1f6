"""``kubehatch event push KEY --data '{...}'``: push a WorkflowEvent.

Every Workflow in the namespace whose spec.triggers.events lists the key (or a
matching ``prefix*``) gets a run with the data as its input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kubehatch.cli._common import NAMESPACE, arg, arguments, client, json_object
from kubehatch.errors import KubehatchError

NAME = "event"
HELP = "push an event: every workflow listening for its key gets a run"

configure_push = arguments(
    arg("key", metavar="KEY", help="the event key, e.g. user:created"),
    arg(
        "-d",
        "--data",
        default="{}",
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
    NAMESPACE,
)


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    configure_push(
        actions.add_parser(
            "push", help="create a WorkflowEvent", description="Create a WorkflowEvent."
        )
    )


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    """A JSON object given inline or as ``@file``; errors name the option and the fix."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as err:
            raise KubehatchError(f"{option}: cannot read {str(path)!r}: {err.strerror}") from err
    return json_object(text, option)


def parse_metadata(items: list[str]) -> dict[str, str]:
    metadata = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KubehatchError(f"--metadata {item!r}: write KEY=VALUE, e.g. source=signup")
        metadata[key] = value
    return metadata


def run(args: argparse.Namespace) -> int:
    payload = parse_json_object(args.data, "--data")
    metadata = parse_metadata(args.metadata)
    api = client(args)
    try:
        name = api.event.push(args.key, payload, metadata=metadata)
    except ValueError as err:  # pydantic: the same checks as the API server
        raise KubehatchError(f"event {args.key!r} is invalid: {err}") from err
    print(f"workflowevent/{name} pushed to namespace {api.namespace} (key {args.key})")
    return 0
