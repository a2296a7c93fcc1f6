"""``kubehatch run WORKFLOW --local``: run a workflow in this process, printing each step.

The worker is imported from ``--worker module:attribute`` (default: ``$KUBEHATCH_WORKER``,
as in a step image), from the working directory, and the run goes through
:mod:`kubehatch._localrun`: the DAG order, retries with their backoff (real waits), step
timeouts, middleware, outputs, and the input checked against the input model's schema.
No cluster is needed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from kubehatch._loader import load_worker
from kubehatch._localrun import StepEvent, run_local
from kubehatch.api import wire
from kubehatch.errors import KubehatchError

WORKER_ENV = wire.ENV_WORKER
SHOWN_OUTPUT = 160
"""Characters of a step's output shown on its line."""


def run_locally(workflow: str, workflow_input: dict[str, Any], reference: str | None) -> int:
    reference = reference or os.environ.get(WORKER_ENV)
    if not reference:
        raise KubehatchError(
            f"--local needs the worker: --worker module:attribute (or ${WORKER_ENV}), "
            "e.g. --worker examples.ex03_two_step:worker"
        )
    worker = load_worker(reference)
    names = [w.name for w in worker.workflows]
    if workflow not in names:
        raise KubehatchError(
            f"{reference} has no workflow {workflow!r} (workflows: {', '.join(names) or 'none'})"
        )
    start = time.monotonic()

    def show(event: StepEvent) -> None:
        line = f"{time.monotonic() - start:6.1f}s  {event.step:<24} {event.phase}"
        if event.attempt > 1:
            line += f" (attempt {event.attempt})"
        if event.message and event.phase != "Succeeded":
            line += f": {event.message.splitlines()[0]}"
        if event.phase == "Succeeded":
            line += f"  {_short(event.output)}"
        print(line, flush=True)

    run = run_local(worker, workflow, workflow_input, run_name=f"{workflow}-local", on_event=show)
    done = sum(phase == "Succeeded" for phase in run.phases.values())
    print(f"local run of {workflow} {run.phase} ({done}/{len(run.phases)} steps succeeded)")
    if not run.succeeded:
        print(run.message, file=sys.stderr)
        return 1
    return 0


def _short(output: Any) -> str:
    text = json.dumps(output)
    return text if len(text) <= SHOWN_OUTPUT else text[: SHOWN_OUTPUT - 3] + "..."
