"""Child runs (``ctx.spawn``): the rules of a spawn request, shared by whoever runs one.

A step returns a spawn request, an envelope under ``wire.SPAWN_KEY`` (see
:mod:`kubehatch.spawning`), instead of a result. The operator (``kubehatch_operator.children``)
and the SDK's local engine (``kubehatch.testing``) apply the same rules to it, from
here: how the envelope is read and checked (:func:`parse`), which workflows a step may
spawn (:func:`not_allowed`), what a succeeded child's result is (:func:`child_result`)
and what the step's output becomes (:func:`results_text`).

The step pod marks the output ConfigMap of a spawn request with
:data:`ANNOTATION_SPAWN_REQUEST` (see :func:`kubehatch.api.outputs.configmaps`), so that
the operator, which sees outputs' metadata as they appear, reads only those outputs.

Plain Python, no models loaded: a step pod imports it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubehatch.api import wire

if TYPE_CHECKING:
    from kubehatch.api.workflow import WorkflowSpec

MAX_CHILDREN = 1000
"""Child runs one step may spawn."""
MAX_RESULTS_BYTES = wire.MAX_INPUT_BYTES
"""The children's results together, as JSON: one ConfigMap, as a small step output."""
KEY = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
"""A child's key (part of its run's name): not only digits either."""
ANNOTATION_SPAWN_REQUEST = f"{wire.GROUP}/spawn-request"
"""On the head ConfigMap of an output that is a spawn request: "true"."""


@dataclass(frozen=True)
class ChildRun:
    """One child run a step asked for."""

    workflow: str
    input: dict[str, Any]
    key: str | None = None


@dataclass(frozen=True)
class Spawn:
    """A spawn request, read: its child runs in order, and whether it came from
    ``ctx.spawn`` (then the step's output is the one child's result, not a list)."""

    runs: tuple[ChildRun, ...]
    single: bool = False


def is_spawn_request(output: Any) -> bool:
    """Whether a step's output asks for child runs."""
    return isinstance(output, dict) and wire.SPAWN_KEY in output


def marked(meta: Mapping[str, Any]) -> bool:
    """Whether an output ConfigMap's metadata marks it as a spawn request."""
    annotations = meta.get("annotations")
    return isinstance(annotations, dict) and annotations.get(ANNOTATION_SPAWN_REQUEST) == "true"


def valid_key(key: Any) -> bool:
    return isinstance(key, str) and bool(KEY.match(key)) and not key.isdigit()


def parse(output: Any) -> Spawn | str | None:
    """The spawn request in a step's output; None when it is none, a str saying why
    when it is malformed."""
    if not is_spawn_request(output):
        return None
    body = output[wire.SPAWN_KEY]
    runs = body.get("runs") if isinstance(body, dict) else None
    if not isinstance(runs, list):
        return f"{wire.SPAWN_KEY} must be an object with a list 'runs' (return ctx.spawn(...))"
    if len(runs) > MAX_CHILDREN:
        return f"{len(runs)} child runs asked; a step may spawn at most {MAX_CHILDREN}"
    parsed: list[ChildRun] = []
    keys: set[str] = set()
    for index, run in enumerate(runs):
        workflow = run.get("workflow") if isinstance(run, dict) else None
        data = run.get("input", {}) if isinstance(run, dict) else None
        key = run.get("key") if isinstance(run, dict) else None
        if not isinstance(workflow, str) or not workflow:
            return f"runs[{index}] names no workflow"
        if not isinstance(data, dict):
            return f"runs[{index}].input must be a JSON object"
        if key is not None:
            if not valid_key(key) or key in keys:
                return f"runs[{index}].key {key!r} is not a valid, unique child key"
            keys.add(key)
        parsed.append(ChildRun(workflow, data, key))
    single = bool(body.get("single"))
    if single and len(parsed) != 1:
        return f"a single spawn asks for {len(parsed)} runs"
    return Spawn(tuple(parsed), single)


def invalid(problem: str) -> str:
    """Why a step whose spawn request cannot be read fails."""
    return f"its spawn request is invalid: {problem}"


def not_allowed(workflows: Sequence[str], allowed: Sequence[str]) -> str | None:
    """Why the step may not spawn these workflows (None when its Workflow's ``spawns``
    lists them all)."""
    if not allowed and not workflows:  # an empty spawn_many
        return (
            "it returned a spawn request, but its Workflow's spec.spawns lists nothing; "
            "list the workflows it spawns in spec.spawns (WorkflowJob(spawns=[...]) in Python)"
        )
    for workflow in workflows:
        if workflow not in allowed:
            listed = ", ".join(allowed) if allowed else "nothing"
            return (
                f"it may not spawn workflow {workflow!r}: its Workflow's spec.spawns "
                f"lists {listed}; add {workflow!r} to spec.spawns "
                f"(WorkflowJob(spawns=[...]) in Python)"
            )
    return None


def leaves(spec: WorkflowSpec) -> list[str]:
    """The steps no other step depends on (the hook steps are none of them)."""
    parents = {parent for step in spec.steps for parent in step.parents}
    return [step.name for step in spec.steps if step.name not in parents]


def child_result(spec: WorkflowSpec, outputs: Mapping[str, Any]) -> Any:
    """A succeeded child's result from its steps' outputs (by step name)."""
    return result_of(leaves(spec), outputs)


def result_of(leaf_steps: Sequence[str], outputs: Mapping[str, Any]) -> Any:
    """A succeeded child's result: the output of its leaf step, or a dict of its leaf
    steps' outputs by name when it has several."""
    if len(leaf_steps) == 1:
        return outputs.get(leaf_steps[0])
    return {name: outputs.get(name) for name in leaf_steps}


def child_failed(name: str, final: str | None, message: str | None) -> str:
    """Why a step fails when its child run ``name`` ended ``final`` (not Succeeded)."""
    verb = (final or "failed").lower().replace("timedout", "timed out")
    return f"child run {name} {verb}: {message or 'no message'}"


def results_text(results: Sequence[Any], single: bool) -> str:
    """The step's output once its children succeeded, as JSON: the one child's result
    for ``ctx.spawn``, the list of results in order for ``ctx.spawn_many``. Raises
    ValueError saying why when it is more than a step's output may be."""
    text = json.dumps(results[0] if single else list(results), separators=(",", ":"))
    size = len(text.encode())
    if size > MAX_RESULTS_BYTES:
        raise ValueError(
            f"its children's results are {size} bytes of JSON, more than a step's output "
            f"may be ({MAX_RESULTS_BYTES} bytes); have the children return less (a reference "
            "to data they store elsewhere)"
        )
    return text
