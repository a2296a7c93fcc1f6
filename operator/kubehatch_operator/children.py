"""Child runs (``ctx.spawn``): a spawning step's next state, a pure function.

A step of a Workflow with ``spec.spawns`` may return a spawn request (the envelope under
``wire.SPAWN_KEY``) instead of a result. Its pod has ended by then; the operator reads
the request (see spawning.py) and hands it here with what the cluster shows of each
child run. The answer is the step's status and the actions to take:

- a workflow the Workflow's ``spawns`` does not list: the step fails, saying which;
- children not created yet: create them (names derived from the run's uid, the step
  and the child's index or key, so a pass redone after a crash creates nothing twice);
  the step stays Running, "waiting for N child runs (k finished)";
- a child that ended otherwise than Succeeded: the step fails ("child run X failed:
  ..."); it is not retried (a retry would spawn again). Its other children still
  running are cancelled, as are those of a step stopped for any other reason;
- all succeeded: the step succeeds, its output (stored by the operator, in a ConfigMap
  of its own) the children's results in order, or the one child's result for
  ``ctx.spawn``.

A child's result is the output of its leaf step, or a dict of its leaf steps' outputs by
name when it has several.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.workflow import StepSpec, WorkflowSpec
from kubehatch.api.workflowrun import StepPhase, StepStatus, WorkflowRunStatus
from kubehatch_operator.model import (
    Attempt,
    AttemptState,
    ChildPhase,
    ChildRequest,
    ChildState,
    CreateChild,
    Decision,
    Run,
    SpawnRequest,
    StepOutput,
)

MAX_CHILDREN = 1000
"""Child runs one step may spawn (the SDK checks the same)."""
MAX_OUTPUT_BYTES = wire.MAX_INPUT_BYTES
"""The children's results together, as JSON: one ConfigMap, as a step's own output."""
POLL = timedelta(seconds=60)
"""A waiting step is looked at again this often, should a child's end go unnoticed
(each child that finishes wakes its parent at once)."""

_KEY = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")


# --- the request --------------------------------------------------------------------------
def parse_request(output: Any) -> SpawnRequest | str | None:
    """The spawn request in a step's output; None when it is none, a str saying why
    when it is malformed."""
    if not isinstance(output, dict) or wire.SPAWN_KEY not in output:
        return None
    body = output[wire.SPAWN_KEY]
    runs = body.get("runs") if isinstance(body, dict) else None
    if not isinstance(runs, list):
        return f"{wire.SPAWN_KEY} must be an object with a list 'runs' (return ctx.spawn(...))"
    if len(runs) > MAX_CHILDREN:
        return f"{len(runs)} child runs asked; a step may spawn at most {MAX_CHILDREN}"
    parsed: list[ChildRequest] = []
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
            if not isinstance(key, str) or not _KEY.match(key) or key.isdigit() or key in keys:
                return f"runs[{index}].key {key!r} is not a valid, unique child key"
            keys.add(key)
        parsed.append(ChildRequest(workflow, data, key))
    single = bool(body.get("single"))
    if single and len(parsed) != 1:
        return f"a single spawn asks for {len(parsed)} runs"
    return SpawnRequest(tuple(parsed), single)


def child_name(run: Run, step: str, index: int, request: ChildRequest) -> str:
    """The child run's name: deterministic, from the parent run's name and uid."""
    return wire.child_run_name(run.name, run.uid, step, request.key or str(index))


def child_names(run: Run, step: str, request: SpawnRequest) -> list[str]:
    return [child_name(run, step, i, child) for i, child in enumerate(request.runs)]


def results_configmap_name(job: str) -> str:
    """Where the operator stores a spawning step's output: beside its attempt's own."""
    return f"{job}-children"


def leaves(spec: WorkflowSpec) -> list[str]:
    """The steps no other step depends on (the on-failure step is none of them)."""
    parents = {parent for step in spec.steps for parent in step.parents}
    return [step.name for step in spec.steps if step.name not in parents]


def child_result(spec: WorkflowSpec, outputs: dict[str, Any]) -> Any:
    """A succeeded child's result from its leaf steps' outputs (by step name)."""
    names = leaves(spec)
    if len(names) == 1:
        return outputs.get(names[0])
    return {name: outputs.get(name) for name in names}


# --- the step -----------------------------------------------------------------------------
def observe_children(
    run: Run,
    step: StepSpec,
    base: StepStatus,
    latest: Attempt,
    now: datetime,
    decision: Decision,
) -> StepStatus:
    """The status of a step whose succeeded attempt asked for child runs."""
    spawned = latest.spawn
    assert spawned is not None
    spec = run.status.workflow_spec
    allowed = spec.spawns if spec is not None else []
    if spawned.request is None:
        return _failed(base, now, f"its spawn request is invalid: {spawned.problem}")
    request = spawned.request
    for child in request.runs:
        if child.workflow not in allowed:
            listed = ", ".join(allowed) if allowed else "nothing"
            return _failed(
                base,
                now,
                f"it may not spawn workflow {child.workflow!r}: its Workflow's spec.spawns "
                f"lists {listed}; add {child.workflow!r} to spec.spawns "
                f"(WorkflowJob(spawns=[...]) in Python)",
            )
    names = child_names(run, step.name, request)
    states = {state.name: state for state in spawned.children}
    count = len(names)
    waiting = base.model_copy(update={"child_runs": count})
    for name in names:
        state = states.get(name, ChildState(name, ChildPhase.ABSENT))
        if state.phase is ChildPhase.FOREIGN:
            return _failed(
                waiting,
                now,
                f"a run named {name} exists that this run did not spawn; delete it, then "
                "start the run again",
            )
        if state.phase is ChildPhase.FAILED:
            verb = (state.final or "failed").lower().replace("timedout", "timed out")
            return _failed(
                waiting, now, f"child run {name} {verb}: {state.message or 'no message'}"
            )
    absent = [i for i, name in enumerate(names) if _phase(states, name) is ChildPhase.ABSENT]
    if absent and base.child_runs is not None:
        # Created in an earlier pass (the creates go out before the status that counts
        # them): it was deleted before its result was read.
        gone = names[absent[0]]
        return _failed(waiting, now, f"child run {gone} was deleted before it finished")
    for index in absent:
        decision.create_children.append(
            CreateChild(step.name, names[index], index, request.runs[index])
        )
    done = sum(_phase(states, name) is ChildPhase.SUCCEEDED for name in names)
    if done < count:
        decision.wake_at = min(t for t in (decision.wake_at, now + POLL) if t is not None)
        return waiting.model_copy(
            update={
                "phase": StepPhase.RUNNING,
                "message": f"waiting for {count} child runs ({done} finished)",
                "next_attempt_at": None,
                "started_at": base.started_at or latest.started_at or now,
            }
        )
    results = [states[name].output for name in names]
    text = json.dumps(results[0] if request.single else results, separators=(",", ":"))
    size = len(text.encode())
    if size > MAX_OUTPUT_BYTES:
        return _failed(
            waiting,
            now,
            f"its children's results are {size} bytes of JSON, more than a step's output "
            f"may be ({MAX_OUTPUT_BYTES} bytes); have the children return less (a reference "
            "to data they store elsewhere)",
        )
    configmap = results_configmap_name(latest.job_name)
    decision.outputs.append(StepOutput(step.name, configmap, text))
    return waiting.model_copy(
        update={
            "phase": StepPhase.SUCCEEDED,
            "finished_at": now,
            "output_config_map": configmap,
            "message": None,
            "next_attempt_at": None,
        }
    )


def _phase(states: dict[str, ChildState], name: str) -> ChildPhase:
    state = states.get(name)
    return state.phase if state is not None else ChildPhase.ABSENT


def _failed(base: StepStatus, now: datetime, message: str) -> StepStatus:
    """The step fails for good: a spawning step is never retried."""
    return base.model_copy(
        update={
            "phase": StepPhase.FAILED,
            "finished_at": now,
            "next_attempt_at": None,
            "message": message,
        }
    )


# --- what to do around the decision -------------------------------------------------------
def to_create(decision: Decision) -> list[CreateChild]:
    """The child runs to create: those of steps still Running once the whole decision is
    made (a run cancelled, timed out or failed in the same pass creates none)."""
    steps = decision.status.steps
    return [
        create
        for create in decision.create_children
        if create.step in steps and steps[create.step].phase is StepPhase.RUNNING
    ]


def to_cancel(status: WorkflowRunStatus, attempts: Iterable[Attempt]) -> list[str]:
    """Child runs to cancel: the unfinished children of spawning steps that are over
    (failed, cancelled, timed out, or their run ended)."""
    cancel: list[str] = []
    for attempt in _spawning(attempts):
        step = status.steps.get(attempt.step)
        if step is None or not step.phase.finished:
            continue
        assert attempt.spawn is not None
        cancel.extend(c.name for c in attempt.spawn.children if c.phase is ChildPhase.ACTIVE)
    return sorted(set(cancel))


def outputs_to_keep(decision: Decision) -> list[StepOutput]:
    """Outputs to store: those of steps that succeeded in the end."""
    steps = decision.status.steps
    return [
        output
        for output in decision.outputs
        if output.step in steps and steps[output.step].phase is StepPhase.SUCCEEDED
    ]


def _spawning(attempts: Iterable[Attempt]) -> Sequence[Attempt]:
    return [a for a in attempts if a.spawn is not None and a.state is AttemptState.SUCCEEDED]
