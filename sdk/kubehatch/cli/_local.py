"""``kubehatch run WORKFLOW --local``: run a workflow in this process, printing each step.

The worker is imported from ``--worker module:attribute`` (default: ``$KUBEHATCH_WORKER``,
as in a step image), from the working directory, and the run goes through
:mod:`kubehatch._localrun`: the DAG order, retries with their backoff (real waits), step
timeouts, middleware, outputs, and the input checked against the input model's schema.
No cluster is needed. Steps that wait take ``--event KEY=JSON`` (an event, its data),
``--approve STEP`` and ``--reject STEP`` (an answer, ``STEP=COMMENT`` with a comment);
``Sleep`` and ``WaitUntil`` really wait.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from kubehatch._loader import load_worker
from kubehatch._localresult import StepEvent
from kubehatch._localrun import run_local
from kubehatch._localwaits import Answer
from kubehatch.api import wire
from kubehatch.errors import KubehatchError

WORKER_ENV = wire.ENV_WORKER
SHOWN_OUTPUT = 160
"""Characters of a step's output shown on its line."""


def given(
    events: list[str], approve: list[str], reject: list[str]
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Answer]]:
    """``--event KEY=JSON``, ``--approve STEP[=COMMENT]`` and ``--reject STEP[=COMMENT]``
    as ``run_local`` takes them."""
    from kubehatch.cli._common import json_object

    found = []
    for text in events:
        key, sep, data = text.partition("=")
        if not sep or not key:
            raise KubehatchError(
                f"--event {text!r}: write KEY=JSON, e.g. --event 'order:paid={{}}'"
            )
        found.append((key, json_object(data, f"--event {key}")))
    answers: dict[str, Answer] = {}
    for approved, flag, steps in ((True, "--approve", approve), (False, "--reject", reject)):
        for text in steps:
            step, sep, comment = text.partition("=")
            if step in answers:
                raise KubehatchError(f"{flag} {step}: step {step} is answered twice")
            answers[step] = (approved, comment) if sep and comment else approved
    return found, answers


def run_locally(
    workflow: str,
    workflow_input: dict[str, Any],
    reference: str | None,
    events: list[tuple[str, dict[str, Any]]] | None = None,
    approvals: dict[str, Answer] | None = None,
) -> int:
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

    run = run_local(
        worker, workflow, workflow_input, run_name=f"{workflow}-local", on_event=show,
        events=events, approvals=approvals,
    )  # fmt: skip
    done = sum(phase == "Succeeded" for phase in run.phases.values())
    print(f"local run of {workflow} {run.phase} ({done}/{len(run.phases)} steps succeeded)")
    if not run.succeeded:
        print(run.message, file=sys.stderr)
        return 1
    return 0


def _short(output: Any) -> str:
    text = json.dumps(output)
    return text if len(text) <= SHOWN_OUTPUT else text[: SHOWN_OUTPUT - 3] + "..."
