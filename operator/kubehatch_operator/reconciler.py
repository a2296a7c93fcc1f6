"""Read, decide, write: one reconcile of one run.

Watch events (a run changed, one of its Jobs changed, its Workflow appeared) and timers
(a retry's backoff ran out, the run's deadline passed) all end in a kick of the run's
key on the operator's work queue, which never reconciles a run twice at once.

A pass reads what the store knows (and the few things watch events do not carry: a
failed pod's termination message, the key action's output), hands it to a pure
decision (`decisions.decide`, `decisions.decide_key`, with `gates.gate` for runs that
wait for a concurrency slot), and applies the result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Coroutine
from typing import Any

from kubehatch.api import wire
from kubehatch.api.workflow import WorkflowSpec
from kubehatch.api.workflowrun import WorkflowRunStatus
from kubehatch_operator import metrics, retention
from kubehatch_operator.admission import Admission
from kubehatch_operator.clock import now
from kubehatch_operator.conditions import reads_parents
from kubehatch_operator.decisions import account_problem, decide, refuse
from kubehatch_operator.entries import Key, RunEntry
from kubehatch_operator.keystep import decide_key
from kubehatch_operator.kube import ForeignObjectError, Kube, refused
from kubehatch_operator.launching import Launcher, describe
from kubehatch_operator.metrics import RECONCILE_SECONDS, admission_cpu
from kubehatch_operator.model import (
    Decision,
    Gate,
    Run,
)
from kubehatch_operator.patches import merge_patch
from kubehatch_operator.ratelimits import RateGate
from kubehatch_operator.reading import Pass, read_pass
from kubehatch_operator.settings import Settings
from kubehatch_operator.slots import Slots
from kubehatch_operator.spawning import Spawns
from kubehatch_operator.store import Store
from kubehatch_operator.workqueue import KeyedQueue

log = logging.getLogger(__name__)

STALE_RETRY_SECONDS = 0.2
"""After a conditional write found its object changed: the watch brings the change soon."""


def _steps_read_input(run: Run) -> bool:
    """Whether a started run's steps read its input: rate limit keys, conditions."""
    spec = run.status.workflow_spec
    return spec is not None and any(
        reads_parents(step) or any(limit.key_expression for limit in step.rate_limits)
        for step in spec.all_steps
    )


class Reconciler:
    def __init__(self, store: Store, kube: Kube, settings: Settings) -> None:
        self.store = store
        self.kube = kube
        self.settings = settings
        self.queue: KeyedQueue[Key] = KeyedQueue("reconciling run", self._timed_reconcile)
        self.sweeps: KeyedQueue[Key] = KeyedQueue("applying the retention of workflow", self._sweep)
        self.slots = Slots(store, self.kick)
        self.spawns = Spawns(store, kube, self.kick)
        self.launcher = Launcher(store, kube, settings, self.kick, self._in_background)
        self._background: set[asyncio.Task[None]] = set()

    def kick(self, key: Key) -> None:
        self.queue.kick(key)

    def wake(self, key: Key, *, workflow_changed: bool = False) -> None:
        """Something about run ``key`` (or its Workflow) may have changed: give it a pass,
        or, when it only waits for a concurrency slot, its key's admission (see `Slots`)."""
        if not self.slots.wake(key, workflow_changed=workflow_changed):
            self.kick(key)

    # --- retention of finished runs ----------------------------------------------------------
    def sweep_soon(self, workflow: Key, delay: float = 0.5) -> None:
        """Apply the Workflow's TTL and history limit shortly: a burst of finished runs (as
        at start-up, when every run is listed) folds into one sweep."""
        self.sweeps.wake_by(workflow, delay)

    async def _sweep(self, workflow: Key) -> float | None:
        entry = self.store.workflows.get(workflow)
        if entry is None or entry.spec is None:
            return None
        ttl, limit = entry.spec.ttl_seconds_after_finished, entry.spec.history_limit
        if ttl is None and limit is None:
            return None
        result = retention.sweep(self.store.finished_runs_of(workflow), ttl, limit, now())
        namespace = workflow[0]
        for name in result.delete:
            try:
                await self.kube.delete_custom(wire.WORKFLOW_RUNS, namespace, name)
            except Exception:
                log.exception("could not delete finished run %s/%s", namespace, name)
                continue
            self.store.forget_run((namespace, name))
        if result.next_at is None:
            return None
        return (result.next_at - now()).total_seconds() + 0.05

    # --- one pass -----------------------------------------------------------------------
    async def _timed_reconcile(self, key: Key) -> float | None:
        with RECONCILE_SECONDS.time():
            return await self.reconcile(key)

    async def reconcile(self, key: Key) -> float | None:
        """One pass over run ``key``; returns the seconds after which to look again."""
        entry = self.store.runs.get(key)
        if entry is None:
            return None
        if entry.run is None:
            return await self._refuse_invalid(entry)
        run_read = entry.run
        if entry.input_elided and (not entry.started or _steps_read_input(entry.run)):
            run_read = await self._with_input(entry, entry.run)  # its input is still to be used
        read = await read_pass(self.store, self.kube, entry, run_read, now())
        read = await self.spawns.read(read)  # spawn requests and child runs' states
        spec = read.spec
        run = read.run
        phase = run.status.phase
        if (
            not entry.started
            and spec is not None
            and not run.spec.cancel
            and (refusal := self._refusal(read, spec))
        ):
            reason, message = refusal
            return await self._apply(
                read, refuse(run.status, run.generation, reason, message, now())
            )
        limited = (
            spec is not None
            and spec.concurrency is not None
            and not (phase is not None and phase.finished)
            and not run.spec.cancel
        )
        if not limited:
            return await self._apply(read, self._decide(read))
        assert spec is not None and spec.concurrency is not None
        if entry.started:  # only a newer run taking its slot can reach it
            return await self._apply(read, self._decide(read, self.slots.superseded(read, spec)))
        if spec.concurrency.action and run.status.concurrency_key is None:
            decision = decide_key(run, spec, read.attempts, read.key_output, now())
            return await self._apply(read, decision)
        return await self._admit(read, spec)

    def _refusal(self, read: Pass, spec: WorkflowSpec) -> tuple[str, str] | None:
        """Why a run that has not started may never start as it is, or None."""
        problem = account_problem(spec, self.settings.steps.allowed)
        if problem is not None:
            return "ServiceAccountNotAllowed", f"Workflow {read.entry.workflow!r}: {problem}"
        size = read.entry.input_bytes
        if size > wire.MAX_INPUT_BYTES:
            return "InputTooLarge", (
                f"spec.input is {size} bytes, more than a run's input may be "
                f"({wire.MAX_INPUT_BYTES} bytes: one ConfigMap); pass a reference to the "
                "data instead (an object-storage URL, a volume path)"
            )
        return None

    async def _with_input(self, entry: RunEntry, run: Run) -> Run:
        """The run with its input, read from the API (the store leaves large ones out)."""
        value = await self.kube.read_run_input(*entry.key)
        return dataclasses.replace(run, spec=run.spec.model_copy(update={"input": value}))

    async def _refuse_invalid(self, entry: RunEntry) -> float | None:
        """A run that does not parse fails alone, saying which field is wrong."""
        meta = entry.body["metadata"]
        status = WorkflowRunStatus()
        message = (
            f"WorkflowRun {meta['name']!r} is invalid: {entry.problem}; fix the field "
            "(kubectl edit) or delete the run"
        )
        generation = int(meta.get("generation") or 1)
        decision = refuse(status, generation, "InvalidSpec", message, now())
        log.warning("run %s/%s: %s", *entry.key, message)
        return await self._write(entry, wire.mapping(entry.body.get("status")), decision)

    def _decide(self, read: Pass, gate: Gate | None = None) -> Decision:
        rates = RateGate(self.store.rates, read.key[0])
        return decide(
            read.run,
            read.workflow,
            read.attempts,
            now(),
            gate,
            rates,
            read.outputs,
            read.gathered,
            read.waited,
        )

    async def _admit(self, read: Pass, spec: WorkflowSpec) -> float | None:
        """Start, queue or cancel a run that has not started, by its workflow's limit.

        Admission looks at every run of the workflow, so it runs one at a time per
        workflow: two runs never both take the last slot. The runs the verdict cancels or
        lets start are kicked, so that they act on it in their own pass.
        """
        assert spec.concurrency is not None
        scope = self.slots.scope(read.entry.workflow_key)
        admission: Admission
        async with self.slots.lock(scope):
            with admission_cpu("run"):
                gate, admission = self.slots.admit(read, spec, scope)
            delay = await self._apply(read, self._decide(read, gate))
            self.slots.taken(read.key)
        for other in {*admission.cancel, *admission.start} - {read.key[1]}:
            self.kick((scope[0], other))
        return delay

    # --- writing a decision -------------------------------------------------------------
    async def _apply(self, read: Pass, decision: Decision) -> float | None:
        """Write a decision: the input, stops, the status, and the new Jobs.

        The pass that starts a run records its Workflow snapshot and first attempts before
        it creates any Job: a crash in between re-creates exactly the recorded Jobs from
        that snapshot, never Jobs of a Workflow edited meanwhile. Later attempts follow a
        snapshot already recorded, and their Jobs' names are a function of it (run uid,
        step, attempt), so their status write and Job creates go out together: whichever
        a crash loses, the next pass finds the other (the store is filled with every Job
        before any pass) and makes the same Job, never a second one.
        """
        decision = await self.spawns.apply(read, decision)  # child runs, before the status
        key, run = read.key, read.run
        namespace, name = key
        if decision.create_input:
            try:
                await self.kube.create_configmap(
                    wire.input_configmap(
                        namespace=namespace,
                        workflow=read.entry.workflow,
                        run=name,
                        run_uid=read.entry.uid,
                        input_json=json.dumps(run.spec.input),
                    )
                )
            except Exception as err:
                if not (refused(err) or isinstance(err, ForeignObjectError)):
                    raise
                why = f"the run's input could not be stored: {describe(err)}"
                decision = refuse(run.status, run.generation, "InputRefused", why, now())
        status = decision.status
        if not await self.launcher.stop(read, decision):
            return STALE_RETRY_SECONDS  # a task moved on: decide again on its new state
        snapshot = run.status.workflow_spec is None and status.workflow_spec is not None
        if decision.start and not snapshot:
            # The Jobs first: their creates leave for the API server before the status is
            # even computed into a patch (the handoff's critical path). Tasks carry their
            # parents' outputs, so they need not wait for a pool parent's to be stored.
            pooled = self.launcher.all_on_pools(read, decision)
            if not pooled:
                await self.launcher.store_outputs(read, decision)
            creates = self.launcher.create(read, decision)
            await asyncio.sleep(0)  # the create tasks hand their calls to the thread pool
            if pooled:
                await self.launcher.store_outputs(read, decision)
            written = await self._write(read.entry, run.status, decision)
            await self.launcher.created(read, decision, creates)
            return self._next(decision) if written else None
        await self.launcher.store_outputs(read, decision)
        if not await self._write(read.entry, run.status, decision):
            return None
        if decision.start:
            await self.launcher.created(read, decision, self.launcher.create(read, decision))
        return self._next(decision)

    @staticmethod
    def _next(decision: Decision) -> float | None:
        """Seconds until the decision wants another look, or None."""
        if decision.wake_at is None:
            return None
        return (decision.wake_at - now()).total_seconds()

    async def _write(
        self, entry: RunEntry, old: WorkflowRunStatus | dict[str, Any], decision: Decision
    ) -> bool:
        """Patch the status (and tell people); False when the run is gone."""
        before = old.to_dict() if isinstance(old, WorkflowRunStatus) else old
        patch = merge_patch(before, self._stamped(entry, decision.status).to_dict())
        if patch:
            updated = await self.kube.patch_status(wire.WORKFLOW_RUNS, *entry.key, patch)
            if updated is None:  # deleted meanwhile: nothing left to do for it
                self.store.forget_run(entry.key)
                metrics.forget_run(entry.key, entry.workflow)
                return False
            self.store.observe_run(updated)
            if entry.key in self.store.finished:  # its retention counts from now
                self.sweep_soon(entry.workflow_key)
                self.spawns.wake_parent(updated)
        metrics.observe_run(entry.key, entry.workflow, entry.created, before, decision.status)
        if self.settings.observability.post_events:
            for event in decision.events:
                self._in_background(
                    self.kube.post_event(entry.body, event.type, event.reason, event.message)
                )
        return True

    @staticmethod
    def _stamped(entry: RunEntry, status: WorkflowRunStatus) -> WorkflowRunStatus:
        """The status with the run's arrival recorded, the first time the operator writes."""
        if status.arrival is not None or entry.resource_version is None:
            return status
        return status.model_copy(update={"arrival": str(entry.resource_version)})

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Off the run's critical path: Events are for people, not for the next decision."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
