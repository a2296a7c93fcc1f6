"""Kubernetes Events for a run's transitions: what `kubectl describe wfr` shows."""

from __future__ import annotations

from datetime import timedelta

from kubehatch.api.workflowrun import StepPhase, WorkflowRunPhase, WorkflowRunStatus
from kubehatch.durations import format_duration
from kubehatch_operator.model import RunEvent

SUCCEEDED_CONDITION = "Succeeded"


def transition_events(old: WorkflowRunStatus, new: WorkflowRunStatus) -> list[RunEvent]:
    """One Event per step transition and per run transition, for `kubectl describe`."""
    events: list[RunEvent] = []
    for name, step in new.steps.items():
        before = old.steps.get(name)
        if before is not None and before.phase == step.phase and before.attempts == step.attempts:
            continue
        if step.phase is StepPhase.PENDING:
            continue
        warning = step.phase in (StepPhase.FAILED, StepPhase.TIMED_OUT, StepPhase.RETRYING)
        attempt = f" (attempt {step.attempts})" if step.attempts > 1 else ""
        detail = f": {step.message}" if step.message and warning else ""
        events.append(
            RunEvent(
                "Warning" if warning else "Normal",
                f"Step{step.phase.value}",
                f"step {name} {step.phase.value.lower()}{attempt}{detail}",
            )
        )
    if new.phase != old.phase and new.phase is not None:
        cond = next((c for c in new.conditions if c.type == SUCCEEDED_CONDITION), None)
        warning = new.phase in (WorkflowRunPhase.FAILED, WorkflowRunPhase.TIMED_OUT)
        took = ""
        if new.finished_at and new.started_at:
            took = f" after {format_duration(max(new.finished_at - new.started_at, timedelta(0)))}"
        message = f"run {new.phase.value.lower()}{took}" + (
            f": {cond.message}" if cond and cond.message else ""
        )
        events.append(
            RunEvent("Warning" if warning else "Normal", f"Run{new.phase.value}", message)
        )
    return events
