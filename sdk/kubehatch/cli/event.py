"""``kubehatch event push KEY --data '{...}'``: push a WorkflowEvent.

Every Workflow in the namespace whose spec.triggers.events lists the key (or a
matching ``prefix*``) gets a run with the data as its input.
"""

from __future__ import annotations

import argparse

from pydantic import ValidationError

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
    payload = json_object(args.data, "--data")
    metadata = key_values(args.metadata, "--metadata")
    api = client(args)
    try:
        name = api.event.push(args.key, payload, metadata=metadata, priority=args.priority)
    except ValidationError as err:  # the same checks as the API server's
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise KubehatchError(f"event {args.key!r} is invalid: {problems}") from err
    print(f"workflowevent/{name} pushed to namespace {api.namespace} (key {args.key})")
    return 0
