"""Child runs in the local engine: a step that returned a spawn request, as the operator
handles it (with the rules of :mod:`kubehatch.api.spawns`).

The request is read and checked against the Workflow's ``spawns`` (a Workflow without
it may spawn nothing); each child run is a local run of the same worker's workflow of
that name, one after the other, named as the operator names child runs; the first that
does not succeed fails the step (never retried); once all succeeded, the step's output is
their results as the operator stores them: the one child's result for ``ctx.spawn``,
the list in order for ``ctx.spawn_many``, a child's result being its leaf step's output
(or a dict by leaf name).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kubehatch.api import spawns, wire
from kubehatch.api.workflow import WorkflowSpec

LOCAL_UID = "local"
"""The uid child run names are derived from (a cluster derives them from the run's)."""
MAX_DEPTH = 10
"""Child runs within child runs, at most (a workflow that spawns itself would not end)."""


class ChildRun(Protocol):
    """A child run, once ended (a `kubehatch._localrun.LocalRun`)."""

    outputs: dict[str, Any]
    phase: str
    message: str

    @property
    def succeeded(self) -> bool: ...


RunChild = Callable[[str, WorkflowSpec, dict[str, Any], str], ChildRun]
"""Runs child workflow (name, spec) with an input under a run name, to its end."""


@dataclass
class Spawned:
    """What became of a spawn request: the step's output, or why it failed."""

    output: Any = None
    failure: str | None = None


def run_children(
    output: Any,
    spec: WorkflowSpec,
    specs: Callable[[str], WorkflowSpec | None],
    run_name: str,
    step: str,
    run_child: RunChild,
    depth: int = 0,
) -> Spawned:
    """Run the child runs ``output`` asks for; ``specs`` gives a workflow's spec by name
    (None when the worker has none)."""
    request = spawns.parse(output)
    if request is None:  # not a request: a plain output
        return Spawned(output)
    if isinstance(request, str):
        return Spawned(failure=spawns.invalid(request))
    forbidden = spawns.not_allowed([run.workflow for run in request.runs], spec.spawns)
    if forbidden is not None:
        return Spawned(failure=forbidden)
    if depth >= MAX_DEPTH:
        return Spawned(failure=f"child runs nest deeper than {MAX_DEPTH} levels locally")
    done = Spawned()
    results = []
    for index, child in enumerate(request.runs):
        name = wire.child_run_name(run_name, LOCAL_UID, step, child.key or str(index))
        child_spec = specs(child.workflow)
        if child_spec is None:
            done.failure = (
                f"child run {name} cannot run locally: the worker has no workflow "
                f"{child.workflow!r} (on a cluster it waits for the Workflow to exist)"
            )
            return done
        run = run_child(child.workflow, child_spec, child.input, name)
        if not run.succeeded:
            done.failure = spawns.child_failed(name, run.phase, run.message)
            return done
        results.append(spawns.child_result(child_spec, run.outputs))
    try:
        done.output = json.loads(spawns.results_text(results, request.single))
    except ValueError as error:
        done.failure = str(error)
    return done
