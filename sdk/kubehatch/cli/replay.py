"""``kubehatch replay RUN``: start a new run with the same input as an earlier one."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import NAMESPACE, RUN_SELECTOR, RUNS, arguments, client, selected_runs

NAME = "replay"
HELP = "start a new run of the same workflow with the same input, priority and metadata"

configure = arguments(RUNS, RUN_SELECTOR, NAMESPACE)


def run(args: argparse.Namespace) -> int:
    api = client(args)
    for name in selected_runs(api, args):
        print(f"workflowrun/{api.replay(name)} created (replay of {name})")
    return 0
