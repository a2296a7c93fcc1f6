"""Whether a step whose parents are done may run: its parent rule, then skipIf and runIf.

The rule is the API layer's (`kubehatch.api.readiness`), shared with the SDK's local
engine; here it is applied to a run's status. Pure: the steps' statuses, the run's input
and metadata and the parents' outputs go in, a `Readiness` comes out. The outputs are
read by the reconciler (`reading`) for the steps that have a condition, since only those
need them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kubehatch.api import readiness
from kubehatch.api.readiness import RUN, WAIT, Readiness, Unreadable, reads_parents
from kubehatch.api.step import StepSpec
from kubehatch.api.workflowrun import StepPhase, StepStatus

__all__ = [
    "RUN",
    "WAIT",
    "Readiness",
    "Unreadable",
    "by_condition",
    "by_parents",
    "needs_outputs",
    "parent_values",
    "reads_parents",
    "succeeded_parents",
    "unbegun",
]


class _Phases(Mapping[str, StepPhase]):
    """The steps' phases, read from their statuses when asked (nothing copied)."""

    def __init__(self, steps: Mapping[str, StepStatus]) -> None:
        self._steps = steps

    def __getitem__(self, name: str) -> StepPhase:
        return self._steps[name].phase

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


def unbegun(step: StepStatus) -> bool:
    """Pending, with no attempt launched since the run started or was last retried (an
    attempt held back by a rate limit has a message only)."""
    return step.phase is StepPhase.PENDING and step.job_name is None


def by_parents(step: StepSpec, steps: Mapping[str, StepStatus]) -> Readiness:
    """The step's parent rule over its parents' phases (a step without parents runs)."""
    return readiness.by_parents(step, _Phases(steps))


def succeeded_parents(step: StepSpec, steps: Mapping[str, StepStatus]) -> list[str]:
    """The parents whose outputs the step receives (and its conditions read)."""
    return readiness.succeeded_parents(step, _Phases(steps))


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
    return readiness.by_condition(step, _Phases(steps), run_input, metadata, outputs)


def parent_values(
    step: StepSpec, steps: Mapping[str, StepStatus], outputs: Mapping[str, Any], reader: str
) -> dict[str, Any] | Readiness:
    """The outputs of the step's succeeded parents for ``reader`` (see `readiness`)."""
    return readiness.parent_values(step, _Phases(steps), outputs, reader)


def needs_outputs(step: StepSpec, steps: Mapping[str, StepStatus]) -> list[str]:
    """The parents whose outputs a pass must read for this step's condition, forEach or
    wait: those that succeeded, once the parent rule lets the step run and before it has
    begun (and, for forEach, while its items run; for a wait, while it waits)."""
    current = steps.get(step.name)
    if not reads_parents(step) or current is None:
        return []
    if step.for_each and current.items is not None and current.phase is StepPhase.RUNNING:
        return succeeded_parents(step, steps)  # its items are worked out on every pass
    if step.wait is not None and current.phase is StepPhase.RUNNING:
        return succeeded_parents(step, steps)  # its time, its filter: on every pass
    if not unbegun(current):
        return []
    if not by_parents(step, steps).run:
        return []
    return succeeded_parents(step, steps)
