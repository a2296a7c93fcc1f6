"""``kubehatch logs RUN [STEP]``: the logs of a run's steps, every attempt.

Each attempt gets a header (its Job, or its WorkerTask on a pool) with its phase, then
its log: a Job's pod's, or a pool step's lines of its worker's log. A pod whose container
has not started (pulling its image, ErrImagePull, Unschedulable...), or a task no worker
has claimed, shows why instead, since it has no log yet.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kubehatch.cli._common import NAMESPACE, RUN, arg, arguments, client

if TYPE_CHECKING:
    from kubehatch.client import Client, PodLog

NAME = "logs"
HELP = "print the logs of a run's steps (every attempt)"

configure = arguments(RUN, arg("step", nargs="?", help="only this step"), NAMESPACE)


def show(pod: PodLog) -> str:
    """One attempt: a header (Job, pod phase), then its log or why it has none."""
    header = f"==> {pod.job} ({pod.phase}) <=="
    if pod.waiting is not None:
        return f"{header}\nnot started: {pod.waiting}"
    text = pod.log.rstrip("\n") or "(no output yet)"
    return f"{header}\n{text}"


def no_pods(api: Client, run: str, step: str | None) -> str:
    """Why there is nothing to show: the run's state says (a missing run is an error)."""
    from kubehatch.client import ApiError

    what = f"step {step!r} of run {run!r}" if step else f"run {run!r}"
    try:
        found = api.get_run(run)
    except ApiError as err:
        if err.status != 403:  # may read pods but not runs: say what we know
            raise
        return f"{what} has no pods (yet, or they were cleaned up)"
    status = found.status
    if status is None or status.phase is None:
        return f"{what} has no pods yet: the operator has not picked the run up"
    spec = status.workflow_spec
    if step and spec is not None and step not in {s.name for s in spec.steps}:
        names = ", ".join(s.name for s in spec.steps)
        return f"run {run!r} has no step {step!r} (its steps: {names})"
    step_status = status.steps.get(step) if step else None
    if step_status is not None and step_status.phase.value in ("Pending", "Skipped"):
        return f"{what} has no pods: the step is {step_status.phase.value}"
    if status.phase.finished:
        return f"{what} has no pods left: the run is {status.phase.value} and they were deleted"
    return f"{what} has no pods yet: the run is {status.phase.value}"


def run(args: argparse.Namespace) -> int:
    api = client(args)
    pods = api.pod_logs(args.run, args.step)
    if not pods:
        print(no_pods(api, args.run, args.step))
        return 0
    for pod in pods:
        print(show(pod), flush=True)
    return 0
