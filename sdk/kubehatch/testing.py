"""Run workflows in-process, without a cluster: for unit tests and trying examples.

The runner follows the engine's contract for what a step sees (input, parents'
outputs as stored JSON, retry count, middleware) but not its scheduling: steps run
one at a time in dependency order, retries happen at once, and timeouts and
concurrency limits are not enforced (:func:`concurrency_key` computes the key)::

    run = run_workflow(worker, "two-step-workflow", {"username": "ada"})
    assert run.outputs["step-two"] == {"message": "..."}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubehatch._serialization import JSONValue
from kubehatch.api.cel import concurrency_key as evaluate_key
from kubehatch.api.graph import topological_order
from kubehatch.context import Context
from kubehatch.errors import PermanentError
from kubehatch.worker import Worker


@dataclass
class LocalRun:
    """The result of :func:`run_workflow`."""

    workflow: str
    outputs: dict[str, JSONValue] = field(default_factory=dict)
    """Each step's output as the engine would store it (JSON data)."""
    attempts: dict[str, int] = field(default_factory=dict)
    """Attempts each step took (1 when it succeeded the first time)."""


def run_workflow(
    worker: Worker, workflow: str, workflow_input: Any = None, *, run_name: str = "local"
) -> LocalRun:
    """Run every step of ``workflow`` once its parents are done; return the outputs.

    A failing step is retried up to its ``retries`` (not after a PermanentError); the
    last error propagates, with a note naming the step.
    """
    worker.check()
    spec = worker.workflow(workflow).spec
    assert spec is not None  # check() passed
    run = LocalRun(workflow)
    for name in topological_order([(step.name, step.parents) for step in spec.steps]):
        step = spec.get_step(name)
        action = worker.resolve_action(spec.qualified_action(step))
        for attempt in range(step.retries + 1):
            run.attempts[name] = attempt + 1
            ctx = Context(
                workflow_input=workflow_input,
                parent_outputs={parent: run.outputs[parent] for parent in step.parents},
                step_name=name,
                workflow_name=workflow,
                run_name=run_name,
                retry_count=attempt,
            )
            try:
                run.outputs[name] = action.run(ctx)
                break
            except Exception as error:
                if isinstance(error, PermanentError) or attempt == step.retries:
                    error.add_note(f"in step {name!r} of workflow {workflow!r}")
                    raise
    return run


def concurrency_key(worker: Worker, workflow: str, workflow_input: Any = None) -> str | None:
    """The concurrency key a run with this input gets (None without a limit)."""
    worker.check()
    spec = worker.workflow(workflow).spec
    assert spec is not None
    limit = spec.concurrency
    if limit is None:
        return None
    if limit.expression is not None:
        return evaluate_key(limit.expression, workflow_input if workflow_input is not None else {})
    assert limit.action is not None
    ctx = Context(workflow_input=workflow_input, workflow_name=workflow, step_name=limit.action)
    return str(worker.resolve_action(limit.action).invoke(ctx))
