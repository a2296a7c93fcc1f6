"""Child runs (``ctx.spawn``): a spawning step's next state, a pure function.

A step of a Workflow with ``spec.spawns`` may return a spawn request (the envelope under
``wire.SPAWN_KEY``) instead of a result. Its pod has ended by then; the operator reads
the request (see spawning.py) and hands it here with what the cluster shows of each
child run. The answer is the step's status and the actions to take (the rules shared
with the SDK's local engine are `kubehatch.api.spawns`'):

- a workflow the Workflow's ``spawns`` does not list (any, in a Workflow without
  ``spawns``): the step fails, saying which;
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

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import spawns, wire
from kubehatch.api.workflow import StepSpec
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

MAX_CHILDREN = spawns.MAX_CHILDREN
"""Child runs one step may spawn (the SDK checks the same)."""
MAX_OUTPUT_BYTES = spawns.MAX_RESULTS_BYTES
"""The children's results together, as JSON: one ConfigMap, as a step's own output."""
POLL = timedelta(seconds=60)
"""A waiting step is looked at again this often, should a child's end go unnoticed
(each child that finishes wakes its parent at once)."""


# --- the request --------------------------------------------------------------------------
def parse_request(output: Any) -> SpawnRequest | str | None:
    """The spawn request in a step's output; None when it is none, a str saying why
    when it is malformed (the rules: `kubehatch.api.spawns.parse`)."""
    return spawns.parse(output)


def child_name(run: Run, step: str, index: int, request: ChildRequest, attempt: int = 1) -> str:
    """The child run's name: deterministic, from the parent run's name and uid and the
    spawning attempt (a retried step's attempt spawns children of its own)."""
    return wire.child_run_name(run.name, run.uid, step, request.key or str(index), attempt)


def child_names(run: Run, step: str, request: SpawnRequest, attempt: int = 1) -> list[str]:
    return [child_name(run, step, i, child, attempt) for i, child in enumerate(request.runs)]


def results_configmap_name(job: str) -> str:
    """Where the operator stores a spawning step's output: beside its attempt's own."""
    return f"{job}-children"


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
        return _failed(base, now, spawns.invalid(spawned.problem or "unreadable"))
    request = spawned.request
    forbidden = spawns.not_allowed([child.workflow for child in request.runs], allowed)
    if forbidden is not None:
        return _failed(base, now, forbidden)
    names = child_names(run, step.name, request, latest.attempt)
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
            return _failed(waiting, now, spawns.child_failed(name, state.final, state.message))
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
    try:
        text = spawns.results_text([states[name].output for name in names], request.single)
    except ValueError as error:
        return _failed(waiting, now, str(error))
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
