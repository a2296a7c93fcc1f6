"""Which pending steps start now: their parents' outcome and their conditions decide.

A step whose parents' outcome rules it out is Skipped (and, in the same pass, what
depends on it); one whose condition says so is Skipped or Failed; the others start,
a forEach step with its first items (see `fanout`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubehatch.api.workflow import StepSpec, WorkflowSpec
from kubehatch.api.workflowrun import StepPhase, StepStatus, WorkflowRunStatus
from kubehatch_operator.conditions import (
    Readiness,
    by_condition,
    by_parents,
    succeeded_parents,
    unbegun,
)
from kubehatch_operator.fanout import begin, item_list, observe_items
from kubehatch_operator.model import Decision, Run
from kubehatch_operator.ratelimits import RateGate
from kubehatch_operator.steps import launch
from kubehatch_operator.waits import begin_wait


def skip_blocked(order: list[str], steps: dict[str, StepSpec], status: WorkflowRunStatus) -> None:
    """Skip the pending steps whose parents' outcome rules them out; in topological
    order, so that a whole branch below a failure is skipped in one pass."""
    for name in order:
        current = status.steps[name]
        if not unbegun(current):
            continue
        skip = by_parents(steps[name], status.steps).skip
        if skip is not None:
            status.steps[name] = current.model_copy(
                update={"phase": StepPhase.SKIPPED, "message": skip}
            )


def start_ready_steps(
    run: Run,
    spec: WorkflowSpec,
    order: list[str],
    status: WorkflowRunStatus,
    decision: Decision,
    now: datetime,
    rates: RateGate | None = None,
    outputs: Mapping[str, Any] | None = None,
) -> None:
    """Start the steps whose parents are done and whose conditions hold; skip (or fail)
    those whose conditions say so, and what depends on them."""
    steps = {step.name: step for step in spec.steps}
    for name in order:
        step, current = steps[name], status.steps[name]
        if not unbegun(current) or not by_parents(step, status.steps).run:
            continue
        verdict = by_condition(
            step, status.steps, run.spec.input, run.spec.additional_metadata, outputs or {}
        )
        if verdict.skip is not None or verdict.fail is not None:
            phase = StepPhase.SKIPPED if verdict.skip is not None else StepPhase.FAILED
            status.steps[name] = current.model_copy(
                update={
                    "phase": phase,
                    "message": verdict.skip or verdict.fail,
                    "finished_at": now if phase is StepPhase.FAILED else None,
                }
            )
            skip_blocked(order, steps, status)
        elif not verdict.run:  # a parent's output is read on the next pass
            decision.wake_at = now
        elif step.wait is not None:
            status.steps[name] = begin_wait(step, current, now)
            decision.wake_at = now  # the next pass looks for what it waits for
        elif step.for_each:
            status.steps[name] = _begin_items(run, step, current, now, decision, rates, outputs)
            skip_blocked(order, steps, status)
        else:
            given = succeeded_parents(step, status.steps)
            parents = {p: status.steps[p].output_config_map or "" for p in given}
            attempt = current.attempts + 1
            status.steps[name] = launch(run, step, attempt, current, now, decision, parents, rates)


def _begin_items(
    run: Run,
    step: StepSpec,
    current: StepStatus,
    now: datetime,
    decision: Decision,
    rates: RateGate | None,
    outputs: Mapping[str, Any] | None,
) -> StepStatus:
    """A forEach step that may run: its list worked out, its first items launched."""
    items = item_list(run, step, decision.status.steps, outputs or {})
    if isinstance(items, Readiness):
        if items.fail is None:  # a parent's output is read on the next pass
            decision.wake_at = now
            return current
        return current.model_copy(
            update={"phase": StepPhase.FAILED, "finished_at": now, "message": items.fail}
        )
    begun = begin(run, step, current, items, now, decision)
    if begun.phase is not StepPhase.RUNNING:
        return begun
    return observe_items(run, step, begun, [], items, None, now, decision, rates)
