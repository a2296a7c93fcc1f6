"""Child runs: what ``ctx.spawn`` and ``ctx.spawn_many`` return, and a step returns.

A step cannot create runs itself (its pod may only write its own output). It returns a
spawn request instead: its output becomes an envelope under a reserved key::

    {"kubehatch.dev/spawn": {"runs": [{"workflow": "child", "input": {...}}], "single": true}}

The operator reads it, checks that the step's Workflow lists every workflow named in
its ``spawns``, creates the child runs (owned by the run) and keeps the step Running,
without a pod, until they are all done. The step then succeeds with the children's
results as its output, which its own children read as usual (``ctx.step_output``): one
child's result for ``ctx.spawn``, the list of results in order for ``ctx.spawn_many``.
A child's result is the output of its last step: of its leaf step (the one no other
step depends on), or a dict by leaf name when it has several. A child that fails (or is
cancelled) fails the step, and the step is not retried: its children are not spawned
again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from kubehatch._serialization import to_jsonable
from kubehatch.api.spawns import MAX_CHILDREN, is_spawn_request, valid_key
from kubehatch.api.wire import SPAWN_KEY
from kubehatch.errors import KubehatchError

__all__ = ["MAX_CHILDREN", "SpawnRequest", "is_spawn_request", "spawn_request"]

_WORKFLOW = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


SpawnRequest = dict[str, Any]
"""A step's request for child runs, as ``ctx.spawn`` returns it: return it from the step.

A plain dict, the JSON envelope the operator reads, so that it is stored like any output
(and costs the step pod no serializer)."""


def spawn_request(
    workflow: str,
    inputs: Iterable[Any],
    *,
    keys: Sequence[str | None] | None = None,
    single: bool = False,
) -> SpawnRequest:
    """Build (and check) a spawn request; raises KubehatchError saying what is wrong."""
    if not isinstance(workflow, str) or not _WORKFLOW.match(workflow):
        raise KubehatchError(
            f"cannot spawn {workflow!r}: name a Workflow (a DNS label, e.g. 'child-task')"
        )
    if isinstance(inputs, (str, bytes, dict)):
        raise KubehatchError("spawn_many takes a list of inputs, one per child run")
    runs: list[dict[str, Any]] = []
    for index, value in enumerate(inputs):
        data = to_jsonable(value, what=f"input of child run {index}") if value is not None else {}
        if not isinstance(data, dict):
            raise KubehatchError(
                f"input of child run {index} must be a JSON object, not {type(data).__name__}"
            )
        runs.append({"workflow": workflow, "input": data})
    if len(runs) > MAX_CHILDREN:
        raise KubehatchError(
            f"a step may spawn at most {MAX_CHILDREN} child runs ({len(runs)} asked); "
            "spawn fewer, each handling a batch"
        )
    if keys is not None:
        keys = list(keys)
        if len(keys) != len(runs):
            raise KubehatchError(f"{len(keys)} keys for {len(runs)} inputs: give one per input")
        seen: set[str] = set()
        for run, key in zip(runs, keys, strict=True):
            if key is None:
                continue
            if not valid_key(key):
                raise KubehatchError(
                    f"child key {key!r} must be lower-case letters, digits and '-' (at most "
                    "32, not only digits): it becomes part of the child run's name"
                )
            if key in seen:
                raise KubehatchError(f"child key {key!r} is given twice; keys must be unique")
            seen.add(key)
            run["key"] = key
    return {SPAWN_KEY: {"runs": runs, "single": single}}
