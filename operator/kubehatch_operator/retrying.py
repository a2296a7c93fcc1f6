"""Retrying a finished run: which steps run again, as a pure function of its status.

The steps that did not succeed (and, given ``fromStep``, that step and every step after
it) go back to Pending; their attempt numbers keep growing, and their retries count
afresh. The hooks run again. The run goes back to Pending without its Workflow snapshot,
so it is admitted again (concurrency limits hold) and takes the Workflow as it is now:
a step whose code was fixed in a new image runs the fix.
"""

from __future__ import annotations

from datetime import datetime

from kubehatch.api.common import Condition, ConditionStatus, set_condition
from kubehatch.api.graph import descendants
from kubehatch.api.workflowrun import (
    RetryRequest,
    StepPhase,
    StepStatus,
    WorkflowRunPhase,
    WorkflowRunStatus,
)
from kubehatch_operator.model import Run
from kubehatch_operator.transitions import SUCCEEDED_CONDITION


def retried(
    run: Run, request: RetryRequest, now: datetime | None = None
) -> WorkflowRunStatus | str:
    """The run's status once retried at ``now``, or why it cannot be. It queues again as
    a run that arrived now: its key and limit are worked out afresh, its arrival and its
    queue time (``retriedAt``) are new."""
    status = run.status
    spec = status.workflow_spec
    if run.spec.cancel:
        return "a cancelled run cannot run again; start a new run with kubehatch replay"
    if spec is None or not status.steps:
        return "the run never started a step; start a new run with kubehatch replay"
    names = [step.name for step in spec.all_steps]
    again = {name for name, step in status.steps.items() if step.phase is not StepPhase.SUCCEEDED}
    if request.from_step is not None:
        if request.from_step not in names:
            return f"spec.retry.fromStep: the run has no step {request.from_step!r} (steps: " + (
                ", ".join(names) + ")"
            )
        graph = [(step.name, step.parents) for step in spec.steps]
        again |= {request.from_step, *descendants(graph, request.from_step)}
    hooks = {step.name for _, step in spec.hooks}
    if not again - hooks:
        return "every step succeeded; name a step to run again from (kubehatch retry --from STEP)"
    new = status.model_copy(deep=True)
    for name in again | hooks:
        old = status.steps.get(name, StepStatus())
        new.steps[name] = StepStatus(
            attempts=old.attempts,
            earlier_attempts=old.attempts,
            message="to run again: the run was retried",
        )
    new.phase = WorkflowRunPhase.PENDING
    new.workflow_spec = None
    new.finished_at = None
    new.duration = None
    new.retry_id = request.id
    new.retried_at = now
    new.arrival = None  # stamped again at the next write: it arrives anew
    new.concurrency_key = None
    new.concurrency_limit = None
    new.retries = (status.retries or 0) + 1
    why = f"from step {request.from_step}" if request.from_step else "from its failed steps"
    new.conditions = set_condition(
        status.conditions,
        Condition(
            type=SUCCEEDED_CONDITION,
            status=ConditionStatus.UNKNOWN,
            reason="Retried",
            message=f"retried {why}: {', '.join(sorted(again - hooks))} to run again",
            observed_generation=run.generation,
        ),
    )
    return new


def retry_message(status: WorkflowRunStatus) -> str:
    """What the retry does, as its condition says."""
    return next((c.message for c in status.conditions if c.type == SUCCEEDED_CONDITION), "")
