"""A forEach step: one Job per item, at most `parallelism` at once; its output is the list
of the items' outputs, in order.

The run's status counts the items (`ItemProgress`), it never lists them: each item's
attempts are its Jobs, and an item's state is worked out from them on every pass by the
rules of any step (`steps.observe_step`: retries after a backoff, a start timeout, a
lost Job made again). The list is evaluated from the forEach expression whenever items
may be launched: the input and the parents' outputs never change, so it is always the
same list, and nothing but its length needs to be kept. The list's rules, the failure's
message and the gathered output are `kubehatch.api.foreach`'s, shared with the local engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import foreach, wire
from kubehatch.api.foreach import NO_ITEMS
from kubehatch.api.step import StepSpec
from kubehatch.api.workflowrun import ItemProgress, StepPhase, StepStatus
from kubehatch_operator.conditions import (
    Readiness,
    Unreadable,
    parent_values,
    succeeded_parents,
)
from kubehatch_operator.model import (
    Attempt,
    AttemptState,
    Decision,
    Item,
    Run,
    StepOutput,
)
from kubehatch_operator.ratelimits import RateGate
from kubehatch_operator.steps import launch, observe_step

LIST_RETRY = timedelta(seconds=1)
"""How soon a pass looks again when a parent's output for the list is still to be read."""
IN_FLIGHT = (StepPhase.RUNNING, StepPhase.RETRYING)
FAILED = (StepPhase.FAILED, StepPhase.TIMED_OUT)


def items_done(status: StepStatus) -> bool:
    """Every item finished, the step still to gather their outputs."""
    progress = status.items
    return (
        status.phase is StepPhase.RUNNING
        and progress is not None
        and progress.succeeded + progress.failed == progress.total
    )


def succeeded_items(step: str, attempts: Sequence[Attempt], earlier: int = 0) -> dict[int, str]:
    """The Job of each item's successful attempt since the run was last retried (attempts
    after ``earlier``; the latest, should there be two), by item index."""
    found: dict[int, Attempt] = {}
    for a in attempts:
        if a.step != step or a.item is None or a.attempt <= earlier:
            continue
        if a.state is AttemptState.SUCCEEDED and (
            a.item not in found or a.attempt > found[a.item].attempt
        ):
            found[a.item] = a
    return {index: a.job_name for index, a in found.items()}


def item_list(
    run: Run, step: StepSpec, steps: Mapping[str, StepStatus], outputs: Mapping[str, Any]
) -> list[str] | Readiness:
    """The items as JSON texts, or WAIT for a parent's output, or why there are none."""
    assert step.for_each is not None
    parents = parent_values(step, steps, outputs, "forEach")
    if isinstance(parents, Readiness):
        return parents
    try:
        return foreach.item_texts(
            step.for_each, run.spec.input, run.spec.additional_metadata, parents
        )
    except ValueError as error:
        return Readiness(fail=str(error))


def begin(
    run: Run,
    step: StepSpec,
    current: StepStatus,
    items: list[str],
    now: datetime,
    decision: Decision,
) -> StepStatus:
    """A forEach step whose list is known: Running with its items counted (launched by
    `observe_items`), or Succeeded at once with an empty list."""
    if not items:
        round = current.earlier_attempts
        output = wire.gathered_output_name(run.name, run.uid, step.name, round)
        decision.outputs.append(StepOutput(step.name, output, "[]"))
        return current.model_copy(
            update={
                "phase": StepPhase.SUCCEEDED,
                "started_at": now,
                "finished_at": now,
                "items": ItemProgress(total=0),
                "output_config_map": output,
                "message": NO_ITEMS,
            }
        )
    return current.model_copy(
        update={
            "phase": StepPhase.RUNNING,
            "started_at": now,
            "items": ItemProgress(total=len(items)),
            "message": None,
        }
    )


def observe_items(
    run: Run,
    step: StepSpec,
    prior: StepStatus,
    attempts: Sequence[Attempt],
    listed: list[str] | Readiness,
    gathered: list[Any] | None,
    now: datetime,
    decision: Decision,
    rates: RateGate | None = None,
) -> StepStatus:
    """The forEach step's status from its items' Jobs: items launched up to its
    parallelism, retried, and the step's end once they are done.

    ``listed`` is the list (WAIT while a parent's output is read: no item is launched
    this pass); ``gathered`` holds the items' outputs once they are all done.
    """
    assert prior.items is not None
    total = prior.items.total
    if isinstance(listed, Readiness) and listed.fail is not None:
        return _fail(step, prior, {}, [], attempts, now, decision, why=listed.fail)
    if isinstance(listed, list) and len(listed) != total:
        why = f"forEach {step.for_each!r} now gives {len(listed)} items, not {total}"
        return _fail(step, prior, {}, [], attempts, now, decision, why=why)
    items = listed if isinstance(listed, list) else None
    by_item: dict[int, list[Attempt]] = {}
    for attempt in attempts:
        if attempt.item is not None and attempt.attempt > prior.earlier_attempts:
            by_item.setdefault(attempt.item, []).append(attempt)
    phases: dict[int, StepStatus] = {}
    item_jobs = {a.job_name for a in attempts if a.item is not None}
    for index in sorted(by_item):
        if index >= total:
            continue
        known = by_item[index]
        latest = max(known, key=lambda a: a.attempt)
        synthetic = StepStatus(
            phase=StepPhase.RUNNING,
            attempts=latest.attempt,
            job_name=latest.job_name,
            started_at=min((a.started_at for a in known if a.started_at), default=None),
            earlier_attempts=prior.earlier_attempts,
        )
        item = Item(index, items[index]) if items is not None else None
        if item is None and latest.state is not AttemptState.ACTIVE:
            phases[index] = synthetic  # the list is needed to retry it: next pass
            continue
        phases[index] = observe_step(run, step, synthetic, known, now, decision, rates, item)
    # An item's Jobs are its only record: one whose pod never started is stopped only
    # once its next attempt exists (below), never before (a retried item would be lost).
    decision.stop_jobs = [j for j in decision.stop_jobs if j not in item_jobs]
    failed = sorted(i for i, s in phases.items() if s.phase in FAILED)
    if failed and not step.continue_on_item_failure:
        return _fail(step, prior, phases, failed, attempts, now, decision)
    cancelled = sorted(i for i, s in phases.items() if s.phase is StepPhase.CANCELLED)
    if cancelled:  # an item's code called ctx.cancel(): it cancels the step
        phase = StepPhase.CANCELLED
        return _fail(step, prior, phases, cancelled, attempts, now, decision, phase)
    in_flight = sum(s.phase in IN_FLIGHT for s in phases.values())
    free = (step.parallelism or total) - in_flight
    if items is not None:
        for index in range(total):
            if free <= 0:
                break
            if index in phases:
                continue
            fresh = StepStatus(earlier_attempts=prior.earlier_attempts)
            first = prior.earlier_attempts + 1
            launched = _launch(run, step, first, fresh, now, decision, rates, index, items)
            phases[index] = launched
            free -= launched.phase in IN_FLIGHT
    elif len(phases) < total:  # the list is worked out on the next pass
        soon = now + LIST_RETRY
        decision.wake_at = min(t for t in (decision.wake_at, soon) if t is not None)
    starting = {s.item: s.attempt for s in decision.start if s.step.name == step.name}
    decision.stop_jobs += [  # attempts replaced by a newer one (their pod never started)
        a.job_name
        for a in attempts
        if a.item in starting and a.attempt < starting[a.item] and a.state is AttemptState.ACTIVE
    ]
    progress = ItemProgress(
        total=total,
        succeeded=sum(s.phase is StepPhase.SUCCEEDED for s in phases.values()),
        failed=len(failed),
        running=sum(s.phase in IN_FLIGHT for s in phases.values()),
    )
    current = prior.model_copy(
        update={
            "items": progress,
            "attempts": max((s.attempts for s in phases.values()), default=prior.attempts),
            "message": None,
        }
    )
    if progress.succeeded + progress.failed < total:
        _wake(decision, phases.values())
        return current
    return _gather(run, step, current, gathered, now, decision)


def _launch(
    run: Run,
    step: StepSpec,
    attempt: int,
    fresh: StepStatus,
    now: datetime,
    decision: Decision,
    rates: RateGate | None,
    index: int,
    items: list[str],
) -> StepStatus:
    steps = decision.status.steps
    parents = {p: steps[p].output_config_map or "" for p in succeeded_parents(step, steps)}
    item = Item(index, items[index])
    return launch(run, step, attempt, fresh, now, decision, parents, rates, item=item)


def _wake(decision: Decision, items: Any) -> None:
    times = [s.next_attempt_at for s in items if s.next_attempt_at is not None]
    if times:
        soonest = min(times)
        decision.wake_at = min(t for t in (decision.wake_at, soonest) if t is not None)


def _fail(
    step: StepSpec,
    prior: StepStatus,
    phases: dict[int, StepStatus],
    failed: list[int],
    attempts: Sequence[Attempt],
    now: datetime,
    decision: Decision,
    phase: StepPhase = StepPhase.FAILED,
    why: str | None = None,
) -> StepStatus:
    """An item failed (after its retries): the step fails, and its other items stop (or
    an item cancelled itself: the step is cancelled; or ``why``: its list failed)."""
    decision.start = [s for s in decision.start if s.step.name != step.name]
    decision.stop_jobs += [
        a.job_name
        for a in attempts
        if a.step == step.name and a.item is not None and a.state is AttemptState.ACTIVE
    ]
    total = prior.items.total if prior.items is not None else 0
    succeeded = sum(s.phase is StepPhase.SUCCEEDED for s in phases.values())
    if why is None:
        why = foreach.item_failed(failed[0], phases[failed[0]].message, succeeded, total)
    return prior.model_copy(
        update={
            "phase": phase,
            "finished_at": now,
            "next_attempt_at": None,
            "items": ItemProgress(total=total, succeeded=succeeded, failed=len(failed)),
            "message": why,
        }
    )


def _gather(
    run: Run,
    step: StepSpec,
    current: StepStatus,
    gathered: list[Any] | None,
    now: datetime,
    decision: Decision,
) -> StepStatus:
    """Every item is done: the step succeeds with their outputs, once they are read."""
    progress = current.items
    assert progress is not None
    if gathered is None:
        decision.wake_at = now  # the next pass reads them
        return current.model_copy(
            update={"message": f"gathering the outputs of {progress.total} items"}
        )
    lost = next((i for i, v in enumerate(gathered) if isinstance(v, Unreadable)), None)
    if lost is not None:
        unread = gathered[lost]
        return current.model_copy(
            update={
                "phase": StepPhase.FAILED,
                "finished_at": now,
                "message": f"the output of item {lost} cannot be gathered: {unread.message}; "
                "have each item return less (a reference)",
            }
        )
    try:
        text, message = foreach.gathered(gathered, progress.succeeded, progress.failed)
    except ValueError as error:
        return current.model_copy(
            update={"phase": StepPhase.FAILED, "finished_at": now, "message": str(error)}
        )
    round = current.earlier_attempts
    output = wire.gathered_output_name(run.name, run.uid, step.name, round)
    decision.outputs.append(StepOutput(step.name, output, text))
    return current.model_copy(
        update={
            "phase": StepPhase.SUCCEEDED,
            "finished_at": now,
            "output_config_map": output,
            "message": message,
        }
    )
