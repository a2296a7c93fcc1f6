"""``kubehatch worker``: run steps of a WorkerPool in a warm process (see :mod:`kubehatch._pool`).

What a pool's pods run (their environment names the pool, the pod and the code), and
what a developer runs against a cluster to work for a pool from their own machine.
Everything it needs loads only when it runs: ``kubehatch --help`` stays cheap.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kubehatch.api import wire
from kubehatch.cli._common import arg, arguments
from kubehatch.errors import KubehatchError

if TYPE_CHECKING:
    from kubehatch._pool.worker import Options

NAME = "worker"
HELP = "run a WorkerPool's steps in this process, warm (what a pool's pods run)"
TRACEBACKS = True  # in a pod, where nobody can rerun it with --debug
DEFAULT_SLOTS = 4
MAX_SLOTS = 256  # kubehatch.api.workerpool.MAX_SLOTS, without loading the models here
EPILOG = (
    "Options default to the environment a WorkerPool's pods get: KUBEHATCH_POOL, "
    "KUBEHATCH_POD_NAMESPACE, KUBEHATCH_SLOTS, KUBEHATCH_WORKER and KUBEHATCH_POD_NAME "
    "(the worker's name in the tasks it claims; else <hostname>-<pid>). Outside a pod it "
    "uses the kubeconfig ($KUBECONFIG, else ~/.kube/config). Each step runs in a child "
    "process; its output lines are prefixed with [<task>]. SIGTERM or Ctrl-C stops "
    "claiming and lets running steps finish (a second one stops them)."
)

configure = arguments(
    arg("--pool", help="the WorkerPool whose steps to run (default: $KUBEHATCH_POOL)"),
    arg(
        "-n",
        "--namespace",
        help="the pool's namespace (default: $KUBEHATCH_POD_NAMESPACE, else the current "
        "kubeconfig context's)",
    ),
    arg(
        "--slots",
        type=int,
        help=f"steps run at once (default: $KUBEHATCH_SLOTS, else {DEFAULT_SLOTS})",
    ),
    arg(
        "-w",
        "--worker",
        metavar="MODULE:ATTR",
        help="the Worker to import once, as in step pods (default: $KUBEHATCH_WORKER)",
    ),
    arg(
        "--stop-grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a cancelled step gets SIGTERM, then SIGKILL this much later (default: 10)",
    ),
    arg(
        "--shutdown-grace",
        type=float,
        default=25.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running steps may finish before they are stopped (default: 25)",
    ),
    epilog=EPILOG,
)


def run(args: argparse.Namespace) -> int:
    from kubehatch._pool.worker import serve

    return serve(options(args, os.environ))


def options(args: argparse.Namespace, env: Mapping[str, str]) -> Options:
    """The worker's options from the command line, then the environment; a missing one
    is an error naming the option and the variable."""
    from kubehatch._pool.worker import Options

    pool = args.pool or env.get(wire.ENV_POOL)
    if not pool:
        raise KubehatchError(
            f"which pool? give --pool NAME (or set {wire.ENV_POOL}); "
            "`kubectl get workerpools` lists them"
        )
    worker = args.worker or env.get(wire.ENV_WORKER)
    if not worker:
        raise KubehatchError(
            f"which code? give --worker module:attribute (or set {wire.ENV_WORKER}), "
            "e.g. --worker myapp.workers:worker, the Worker the pool's steps come from"
        )
    slots = args.slots
    if slots is None:
        text = env.get(wire.ENV_SLOTS) or str(DEFAULT_SLOTS)
        try:
            slots = int(text)
        except ValueError:
            raise KubehatchError(f"{wire.ENV_SLOTS}={text!r} is not a number") from None
    if not 1 <= slots <= MAX_SLOTS:
        raise KubehatchError(f"--slots {slots}: give 1 to {MAX_SLOTS} steps at once")
    graces = {"--stop-grace": args.stop_grace, "--shutdown-grace": args.shutdown_grace}
    for flag, seconds in graces.items():
        if seconds < 0:
            raise KubehatchError(f"{flag} {seconds:g}: give a number of seconds, 0 or more")
    identity = env.get(wire.ENV_POD_NAME) or f"{socket.gethostname()}-{os.getpid()}"
    return Options(
        pool=pool,
        worker=worker,
        identity=identity,
        namespace=args.namespace or env.get(wire.ENV_POD_NAMESPACE) or None,
        slots=slots,
        stop_grace=args.stop_grace,
        shutdown_grace=args.shutdown_grace,
    )
