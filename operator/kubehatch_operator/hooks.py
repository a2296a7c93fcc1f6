"""The hook steps: onFailure, onSuccess and onExit, run once the other steps are done.

onFailure runs when a step failed, onSuccess when none did; onExit runs last, after
whichever of those ran, either way. A hook that does not apply is Skipped, saying why.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from kubehatch.api.hooks import why_not
from kubehatch.api.workflow import Hook, StepSpec, WorkflowSpec
from kubehatch.api.workflowrun import StepPhase, WorkflowRunStatus
from kubehatch_operator.conditions import unbegun
from kubehatch_operator.model import Decision, Run
from kubehatch_operator.ratelimits import RateGate
from kubehatch_operator.steps import launch
from kubehatch_operator.waits import begin_wait

FAILED_PHASES = (StepPhase.FAILED, StepPhase.TIMED_OUT)
MAX_FAILURES_BYTES = 64 * 1024


def failed(status: WorkflowRunStatus, names: list[str]) -> list[str]:
    return [name for name in names if status.steps[name].phase in FAILED_PHASES]


def start_hooks(
    run: Run,
    spec: WorkflowSpec,
    order: list[str],
    status: WorkflowRunStatus,
    decision: Decision,
    now: datetime,
    rates: RateGate | None = None,
) -> None:
    """Once every other step is done: start the hooks that apply, skip the others."""
    if not all(status.steps[name].phase.finished for name in order):
        return
    any_failed = bool(failed(status, order))
    cancelled = any(status.steps[name].phase is StepPhase.CANCELLED for name in order)
    for hook, step in spec.hooks:
        current = status.steps[step.name]
        if not unbegun(current):
            continue
        if hook is Hook.ON_EXIT and not all(
            status.steps[s.name].phase.finished for h, s in spec.hooks if h is not Hook.ON_EXIT
        ):
            continue  # it runs last
        reason = why_not(hook, any_failed, cancelled)
        if reason is not None:
            status.steps[step.name] = current.model_copy(
                update={"phase": StepPhase.SKIPPED, "message": f"not run: {reason}"}
            )
            continue
        if step.wait is not None:  # e.g. an approval before cleaning up
            status.steps[step.name] = begin_wait(step, current, now)
            decision.wake_at = now
            continue
        attempt = current.attempts + 1
        status.steps[step.name] = launch(run, step, attempt, current, now, decision, {}, rates)


def _cut(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "..."


def with_failures(spec: WorkflowSpec, status: WorkflowRunStatus, decision: Decision) -> None:
    """Hand the hooks' attempts (first, retries, or a lost Job made again) what the failed
    steps said."""
    hooks: dict[str, StepSpec] = {step.name: step for _, step in spec.hooks}
    if not any(start.step.name in hooks for start in decision.start):
        return
    names = list(status.steps)
    updated = []
    for start in decision.start:
        if start.step.name in hooks:
            others = [n for n in names if n != start.step.name]
            start = dataclasses.replace(start, failures=_failures(status, failed(status, others)))
        updated.append(start)
    decision.start = updated


def _failures(status: WorkflowRunStatus, names: list[str]) -> dict[str, str]:
    # One environment variable holds them all (Linux caps one at 128 KiB): each message
    # is cut to its share of 64 KiB.
    share = max(MAX_FAILURES_BYTES // max(len(names), 1), 64)
    return {name: _cut(status.steps[name].message or "", share) for name in names}
