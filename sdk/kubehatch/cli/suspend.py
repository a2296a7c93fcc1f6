"""``kubehatch suspend RUN``: start no new step of a run; the running ones finish."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import NAMESPACE, RUN_SELECTOR, RUNS, arguments, for_each_run

NAME = "suspend"
HELP = "start no new step of a run (nor retry, nor item); the running ones finish"

configure = arguments(RUNS, RUN_SELECTOR, NAMESPACE, epilog="kubehatch resume RUN undoes it.")


def run(args: argparse.Namespace) -> int:
    return for_each_run(args, lambda api, name: api.suspend(name), "suspended")
