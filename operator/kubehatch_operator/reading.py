"""The read half of a reconcile pass: what the store knows, plus what watches do not carry.

Watch events carry Jobs and runs, not why a pod failed (its termination message), why
it has not started (its waiting reason), or what a concurrency key action returned (its
output). Those are read here, once per attempt where they cannot change, and only for
the attempts that need them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.workflow import WorkflowSpec
from kubehatch.api.workflowrun import StepPhase, StepStatus
from kubehatch_operator import tasks
from kubehatch_operator.conditions import Unreadable, needs_outputs, reads_parents
from kubehatch_operator.entries import Key, RunEntry
from kubehatch_operator.fanout import items_done, succeeded_items
from kubehatch_operator.keystep import key_attempt
from kubehatch_operator.kube import Kube
from kubehatch_operator.model import Attempt, AttemptState, Run
from kubehatch_operator.output_cache import OutputCache
from kubehatch_operator.store import Store
from kubehatch_operator.waits import Waited, since

WAITING_AFTER = timedelta(seconds=5)
"""A pod not started by then is asked why (on a busy node, starting takes seconds)."""


@dataclasses.dataclass(frozen=True)
class Pass:
    """What one reconcile pass read."""

    entry: RunEntry
    run: Run
    workflow: WorkflowSpec | str | None
    """The Workflow's spec, why it is invalid, or None when it does not exist."""
    attempts: list[Attempt]
    key_output: str | None = None
    """What the concurrency key action returned, once it succeeded."""
    gathered: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    """For forEach steps whose items are all done: the items' outputs, in order."""
    waited: dict[str, Waited] = dataclasses.field(default_factory=dict)
    """For steps that wait for an event or an approval: what may be it."""
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Outputs of steps that pending steps' conditions read, by step (`Unreadable` when
    the output could not be read)."""

    @property
    def key(self) -> Key:
        return self.entry.key

    @property
    def spec(self) -> WorkflowSpec | None:
        """The spec the run follows: its snapshot once started, else the Workflow's."""
        if self.run.status.workflow_spec is not None:
            return self.run.status.workflow_spec
        return self.workflow if isinstance(self.workflow, WorkflowSpec) else None


async def read_pass(store: Store, kube: Kube, entry: RunEntry, run: Run, now: datetime) -> Pass:
    workflow = store.workflows.get(entry.workflow_key)
    attempts = await _attempts(store, kube, entry, now)
    key_output = None
    latest_key = key_attempt(attempts)
    if (
        latest_key is not None
        and latest_key.state is AttemptState.SUCCEEDED
        and run.status.concurrency_key is None
    ):
        configmap = wire.output_configmap_name(latest_key.job_name)
        key_output = str(await kube.read_output(entry.key[0], configmap))
    return Pass(
        entry=entry,
        run=run,
        workflow=workflow.for_decisions if workflow is not None else None,
        attempts=attempts,
        key_output=key_output,
        outputs=await _parent_outputs(store.outputs, kube, entry.key[0], run),
        gathered=await _gathered(kube, entry.key[0], run, attempts),
        waited=_waited(store, entry.key, run),
    )


def _waited(store: Store, key: Key, run: Run) -> dict[str, Waited]:
    """For the run's steps that wait for an event: the events that may be it (and the
    run is registered as waiting for their keys, so that a new one wakes it); for those
    that wait for approval: the answers given since the wait began."""
    spec, steps = run.status.workflow_spec, run.status.steps
    found: dict[str, Waited] = {}
    patterns: set[str] = set()
    for step in spec.all_steps if spec is not None else ():
        current = steps.get(step.name)
        wait = step.wait
        if wait is None or current is None or current.phase is not StepPhase.RUNNING:
            continue
        if wait.event is not None and current.started_at is not None:
            patterns.add(wait.event.key)
            events = store.events.matching(key[0], wait.event.key, since(step, current.started_at))
            found[step.name] = Waited(events=events)
        if wait.approval is not None:
            approvals = store.approvals.for_step(*key, step.name, since=current.started_at)
            found[step.name] = Waited(approvals=approvals)
    store.events.wait(key, patterns)
    return found


async def _parent_outputs(
    cache: OutputCache, kube: Kube, namespace: str, run: Run
) -> dict[str, Any]:
    """The outputs that the conditions and forEach lists of the run's ready steps read
    (most runs: none)."""
    spec, steps = run.status.workflow_spec, run.status.steps
    if spec is None or not any(reads_parents(s) for s in spec.steps):
        return {}
    wanted = {p for step in spec.steps for p in needs_outputs(step, steps)}
    names = sorted(p for p in wanted if steps[p].output_config_map)
    reads = [
        _output_or_why(cache, kube, namespace, steps[p].output_config_map or "") for p in names
    ]
    return dict(zip(names, await asyncio.gather(*reads), strict=True))


async def _gathered(
    kube: Kube, namespace: str, run: Run, attempts: list[Attempt]
) -> dict[str, list[Any]]:
    """The items' outputs of the forEach steps whose items are all done, in order (read
    once: the step then succeeds with them)."""
    spec, steps = run.status.workflow_spec, run.status.steps
    if spec is None:
        return {}
    found: dict[str, list[Any]] = {}
    for step in spec.steps:
        current = steps.get(step.name)
        if step.for_each and current is not None and items_done(current):
            jobs = succeeded_items(step.name, attempts, current.earlier_attempts)
            pooled = {a.job_name: a.output for a in attempts if a.output is not None}
            values = await asyncio.gather(
                *(
                    _item_output(kube, namespace, jobs.get(i), pooled)
                    for i in range(_total(current))
                )
            )
            found[step.name] = list(values)
    return found


async def _item_output(kube: Kube, namespace: str, job: str | None, pooled: dict[str, str]) -> Any:
    """An item's output (None for an item that failed), or why it cannot be read; an item
    that ran on a pool brought its output in its task."""
    if job is None:
        return None
    if job in pooled:
        return json.loads(pooled[job])
    configmap = wire.output_configmap_name(job)
    try:
        return await kube.read_output(namespace, configmap)
    except Exception as error:
        return Unreadable(f"ConfigMap {configmap}: {error}")


def _total(status: StepStatus) -> int:
    return status.items.total if status.items is not None else 0


async def _output_or_why(cache: OutputCache, kube: Kube, namespace: str, configmap: str) -> Any:
    kept, value = cache.get((namespace, configmap))
    if kept:
        return value
    try:
        value = await kube.read_output(namespace, configmap)
    except Exception as error:
        return Unreadable(f"ConfigMap {configmap}: {error}")
    cache.put((namespace, configmap), value)
    return value


async def _attempts(store: Store, kube: Kube, entry: RunEntry, now: datetime) -> list[Attempt]:
    """The run's attempts: failed ones with their pod's termination message (read once),
    and ones whose pod is slow to start with the reason it waits (read on every pass)."""
    namespace = entry.key[0]
    known = store.attempts_of(entry)
    reads = [
        (job, attempt, _read(kube, namespace, attempt, now))
        for job, attempt in list(known.items())
        if _needs_read(attempt, now)
    ]
    results = await asyncio.gather(*(read for _, _, read in reads))
    for (job, attempt, _), read in zip(reads, results, strict=True):
        merged = _merge_read(known.get(job), attempt, read)
        if merged is not None:  # None: the Job was deleted meanwhile
            known[job] = merged
    return [_pool_waiting(store, namespace, a, now) for a in known.values()]


def _pool_waiting(store: Store, namespace: str, attempt: Attempt, now: datetime) -> Attempt:
    """A task no worker has claimed yet, after a while: why, from what its pool shows."""
    if (
        not attempt.pool
        or attempt.started
        or attempt.state is not AttemptState.ACTIVE
        or attempt.started_at is None
        or now - attempt.started_at < WAITING_AFTER
    ):
        return attempt
    why = tasks.waiting_reason(attempt.pool, store.pools.get((namespace, attempt.pool)))
    return dataclasses.replace(attempt, waiting=why)


def _merge_read(current: Attempt | None, read_from: Attempt, read: Attempt) -> Attempt | None:
    """What to keep of a read made from `read_from` when the store now holds `current`.

    A watch event may have brought a newer state of the Job while we read: that one wins
    (writing back our copy would turn a Job that just succeeded back to Active), but a
    failure's message is kept, so the step's final status says why it failed.
    """
    if current is read_from:
        return read
    if (
        current is not None
        and current.state is AttemptState.FAILED
        and read.state is AttemptState.FAILED
        and current.message is None
    ):
        return dataclasses.replace(
            current,
            message=read.message,
            permanent=read.permanent,
            timed_out=current.timed_out or read.timed_out,
            cancelled=read.cancelled,
        )
    return current


def _needs_read(attempt: Attempt, now: datetime) -> bool:
    if attempt.state is AttemptState.FAILED:
        return attempt.message is None and not attempt.timed_out
    return (
        attempt.state is AttemptState.ACTIVE
        and not attempt.started
        and bool(attempt.uid)
        and attempt.started_at is not None
        and now - attempt.started_at >= WAITING_AFTER
        and (attempt.waiting_read_at is None or now - attempt.waiting_read_at >= WAITING_AFTER)
    )


async def _read(kube: Kube, namespace: str, attempt: Attempt, now: datetime) -> Attempt:
    """What the API tells about an attempt beyond its Job: why it failed, or why it waits."""
    if attempt.state is AttemptState.FAILED:
        message, code = await kube.termination_message(namespace, attempt.uid)
        return dataclasses.replace(
            attempt,
            message=message or "no message",
            permanent=code == wire.EXIT_PERMANENT,
            timed_out=code == wire.EXIT_TIMED_OUT,
            cancelled=code == wire.EXIT_SELF_CANCELLED,
        )
    waiting = await kube.why_waiting(namespace, attempt.uid)
    return dataclasses.replace(attempt, waiting=waiting, waiting_read_at=now)
