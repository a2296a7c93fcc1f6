"""Whether a step whose parents are done may run: its parent rule, then skipIf and runIf.

Pure, and the one definition of the rule: the operator (``kubehatch_operator.conditions``,
over a run's status) and the local engine (``kubehatch.testing``, over the steps it ran)
both decide with these functions, so a DAG ends with the same phases and messages on a
cluster and in a test. The parents' phases, the run's input and metadata and the
parents' outputs go in, a `Readiness` comes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubehatch.api.cel import condition
from kubehatch.api.step import ParentRule, StepSpec
from kubehatch.api.workflowrun import StepPhase


@dataclass(frozen=True)
class Unreadable:
    """A parent's output that could not be read for a condition, and why."""

    message: str


@dataclass(frozen=True)
class Readiness:
    """What a pending step does now: wait, run, be skipped or fail (with why)."""

    run: bool = False
    skip: str | None = None
    fail: str | None = None


WAIT = Readiness()
RUN = Readiness(run=True)

Phases = Mapping[str, StepPhase]
"""Steps' phases by name (at least the step's parents')."""


def by_parents(step: StepSpec, phases: Phases) -> Readiness:
    """The step's parent rule over its parents' phases (a step without parents runs)."""
    parents = {parent: phases[parent] for parent in step.parents}
    rule = step.parent_rule or ParentRule.ALL_SUCCEEDED
    if rule is ParentRule.ALL_SUCCEEDED:
        for parent, phase in parents.items():
            if phase.finished and phase is not StepPhase.SUCCEEDED:
                return Readiness(skip=f"not run: parent {parent} {phase.lower()}")
        if all(phase is StepPhase.SUCCEEDED for phase in parents.values()):
            return RUN
        return WAIT
    if not all(phase.finished for phase in parents.values()):
        return WAIT
    none_succeeded = not any(phase is StepPhase.SUCCEEDED for phase in parents.values())
    if rule is ParentRule.ANY_SUCCEEDED and parents and none_succeeded:
        return Readiness(skip="not run: no parent succeeded (parentRule AnySucceeded)")
    return RUN


def succeeded_parents(step: StepSpec, phases: Phases) -> list[str]:
    """The parents whose outputs the step receives (and its conditions read)."""
    return [p for p in step.parents if phases[p] is StepPhase.SUCCEEDED]


def by_condition(
    step: StepSpec,
    phases: Phases,
    run_input: Any,
    metadata: Mapping[str, str] | None,
    outputs: Mapping[str, Any],
) -> Readiness:
    """The step's skipIf and runIf, for a step its parents let run.

    ``outputs`` holds the outputs read so far, by step (`Unreadable` for one that could
    not be); a parent's output not read yet makes the step wait (for the next pass).
    """
    if step.skip_if is None and step.run_if is None:
        return RUN
    parents = parent_values(step, phases, outputs, "its condition")
    if isinstance(parents, Readiness):
        return parents
    checks = (("skipIf", step.skip_if, True), ("runIf", step.run_if, False))
    for what, expression, skips_when in checks:
        if expression is None:
            continue
        try:
            result = condition(what, expression, run_input, dict(metadata or {}), parents)
        except ValueError as error:
            return Readiness(fail=f"condition failed: {error}")
        if result is skips_when:
            return Readiness(skip=f"skipped: {what} {expression!r} was {str(result).lower()}")
    return RUN


def parent_values(
    step: StepSpec, phases: Phases, outputs: Mapping[str, Any], reader: str
) -> dict[str, Any] | Readiness:
    """The outputs of the step's succeeded parents, for ``reader`` (its condition, its
    forEach) to read: WAIT when one is not read yet, or why one cannot be read."""
    parents: dict[str, Any] = {}
    for parent in succeeded_parents(step, phases):
        if parent not in outputs:
            return WAIT
        value = outputs[parent]
        if isinstance(value, Unreadable):
            return Readiness(
                fail=f"{reader} cannot read the output of parent {parent}: "
                f"{value.message}; have {parent} return a small summary"
            )
        parents[parent] = value
    return parents


def reads_parents(step: StepSpec) -> bool:
    """Whether the step's condition, forEach or wait (``until``, an event's filter) reads
    its parents' outputs."""
    wait = step.wait
    waits = wait is not None and bool(wait.until or (wait.event and wait.event.filter))
    return bool(step.skip_if or step.run_if or step.for_each or waits)
