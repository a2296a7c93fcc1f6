"""``kubehatch logs RUN [STEP]``: the logs of a run's step pods, every attempt."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import NAMESPACE, RUN, arg, arguments, client

NAME = "logs"
HELP = "print the logs of a run's steps (every attempt)"

configure = arguments(RUN, arg("step", nargs="?", help="only this step"), NAMESPACE)


def run(args: argparse.Namespace) -> int:
    logs = client(args).logs(args.run, args.step)
    if not logs:
        print(f"no step pods of run {args.run!r} (yet, or they were cleaned up)")
        return 0
    for job, text in logs.items():
        print(f"==> {job} <==")
        print(text.rstrip("\n"))
    return 0
