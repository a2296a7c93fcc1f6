"""``kubehatch retry RUN [--from STEP]``: run a finished run again from its failed steps."""

from __future__ import annotations

import argparse
import sys

from kubehatch._reruns import wait_retried
from kubehatch.cli._common import (
    NAMESPACE,
    RUN_SELECTOR,
    RUNS,
    arg,
    arguments,
    client,
    selected_runs,
)
from kubehatch.errors import KubehatchError

NAME = "retry"
HELP = (
    "run a finished run again from its failed steps (or --from a step), keeping the "
    "outputs of the steps that succeeded"
)

configure = arguments(
    RUNS,
    arg("--from", dest="from_step", metavar="STEP", help="run this step and all after it again"),
    RUN_SELECTOR,
    arg("--wait", action="store_true", help="wait until the run finishes again"),
    NAMESPACE,
    epilog=(
        "The run takes the Workflow as it is now: apply a fixed Workflow (a new image, say) "
        "first. Attempt numbers keep growing; each step's retries count afresh."
    ),
)


def run(args: argparse.Namespace) -> int:
    api = client(args)
    names = selected_runs(api, args)
    refused = 0
    requests = {}
    for name in names:
        try:
            requests[name] = api.retry(name, from_step=args.from_step)
        except KubehatchError as error:
            if len(names) == 1:
                raise
            print(f"workflowrun/{name} not retried: {error}", file=sys.stderr)
            refused += 1
            continue
        print(f"workflowrun/{name} retry requested")
    if args.wait:
        for name, request in requests.items():
            wait_retried(api, name, request)
            final = api.wait(name)
            phase = final.status.phase.value if final.status and final.status.phase else "?"
            print(f"workflowrun/{name} {phase}")
    return 1 if refused else 0
