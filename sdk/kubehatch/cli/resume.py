"""``kubehatch resume RUN``: let a suspended run start steps again."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import NAMESPACE, RUN_SELECTOR, RUNS, arguments, for_each_run

NAME = "resume"
HELP = "let a suspended run start steps again"

configure = arguments(RUNS, RUN_SELECTOR, NAMESPACE)


def run(args: argparse.Namespace) -> int:
    return for_each_run(args, lambda api, name: api.resume(name), "resumed")
