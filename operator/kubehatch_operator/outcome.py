"""What a run's finished steps add up to, in words: the first failure, the first
cancellation (Failed outranks Cancelled when both happened)."""

from __future__ import annotations

from kubehatch.api.workflowrun import StepPhase, WorkflowRunStatus


def first_failure(status: WorkflowRunStatus, order: list[str]) -> str | None:
    """What the run's first failed step says, or None when no step failed."""
    for name in order:
        step = status.steps[name]
        if step.phase in (StepPhase.FAILED, StepPhase.TIMED_OUT):
            verb = "timed out" if step.phase is StepPhase.TIMED_OUT else "failed"
            text = (step.message or "no message").removeprefix("failed: ")
            return f"step {name} {verb}: {text}"
    return None


def first_cancellation(status: WorkflowRunStatus, order: list[str]) -> str | None:
    """What the first step that cancelled itself says, or None when none did."""
    for name in order:
        step = status.steps[name]
        if step.phase is StepPhase.CANCELLED:
            return f"step {name} was cancelled: {step.message or 'no message'}"
    return None
