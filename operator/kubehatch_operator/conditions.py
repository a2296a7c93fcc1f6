"""Whether a step whose parents are done may run: its parent rule, then skipIf and runIf.

Pure: the parents' phases, the run's input and metadata and the parents' outputs go in,
a `Readiness` comes out. The outputs are read by the reconciler (`reading`) for the
steps that have a condition, since only those need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubehatch.api.cel import condition
from kubehatch.api.step import ParentRule, StepSpec
from kubehatch.api.workflowrun import StepPhase, StepStatus


@dataclass(frozen=True)
class Unreadable:
    """A parent's output the operator could not read for a condition, and why."""

    message: str


@dataclass(frozen=True)
class Readiness:
    """What a pending step does now: wait, run, be skipped or fail (with why)."""

    run: bool = False
    skip: str | None = None
    fail: str | None = None


def unbegun(step: StepStatus) -> bool:
    """Pending, with no attempt launched since the run started or was last retried (an
    attempt held back by a rate limit has a message only)."""
    return step.phase is StepPhase.PENDING and step.job_name is None


WAIT = Readiness()
RUN = Readiness(run=True)


def by_parents(step: StepSpec, steps: Mapping[str, StepStatus]) -> Readiness:
    """The step's parent rule over its parents' phases (a step without parents runs)."""
    phases = {parent: steps[parent].phase for parent in step.parents}
    rule = step.parent_rule or ParentRule.ALL_SUCCEEDED
    if rule is ParentRule.ALL_SUCCEEDED:
        for parent, phase in phases.items():
            if phase.finished and phase is not StepPhase.SUCCEEDED:
                return Readiness(skip=f"not run: parent {parent} {phase.lower()}")
        if all(phase is StepPhase.SUCCEEDED for phase in phases.values()):
            return RUN
        return WAIT
    if not all(phase.finished for phase in phases.values()):
        return WAIT
    none_succeeded = not any(phase is StepPhase.SUCCEEDED for phase in phases.values())
    if rule is ParentRule.ANY_SUCCEEDED and phases and none_succeeded:
        return Readiness(skip="not run: no parent succeeded (parentRule AnySucceeded)")
    return RUN


def succeeded_parents(step: StepSpec, steps: Mapping[str, StepStatus]) -> list[str]:
    """The parents whose outputs the step receives (and its conditions read)."""
    return [p for p in step.parents if steps[p].phase is StepPhase.SUCCEEDED]


def by_condition(
    step: StepSpec,
    steps: Mapping[str, StepStatus],
    run_input: Any,
    metadata: dict[str, str],
    outputs: Mapping[str, Any],
) -> Readiness:
    """The step's skipIf and runIf, for a step its parents let run.

    ``outputs`` holds the outputs read for this pass, by step; a parent's output not read
    yet makes the step wait for the next pass (which reads it).
    """
    if step.skip_if is None and step.run_if is None:
        return RUN
    parents: dict[str, Any] = {}
    for parent in succeeded_parents(step, steps):
        if parent not in outputs:
            return WAIT
        value = outputs[parent]
        if isinstance(value, Unreadable):
            return Readiness(
                fail=f"its condition cannot read the output of parent {parent}: "
                f"{value.message}; have {parent} return a small summary for conditions"
            )
        parents[parent] = value
    checks = (("skipIf", step.skip_if, True), ("runIf", step.run_if, False))
    for what, expression, skips_when in checks:
        if expression is None:
            continue
        try:
            result = condition(what, expression, run_input, metadata, parents)
        except ValueError as error:
            return Readiness(fail=f"condition failed: {error}")
        if result is skips_when:
            return Readiness(skip=f"skipped: {what} {expression!r} was {str(result).lower()}")
    return RUN


def needs_outputs(step: StepSpec, steps: Mapping[str, StepStatus]) -> list[str]:
    """The parents whose outputs a pass must read for this step's condition: those that
    succeeded, once the parent rule lets the step run and before it has begun."""
    current = steps.get(step.name)
    if (step.skip_if is None and step.run_if is None) or current is None:
        return []
    if not unbegun(current):
        return []
    if not by_parents(step, steps).run:
        return []
    return succeeded_parents(step, steps)
