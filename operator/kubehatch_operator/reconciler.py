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
import time
from typing import Any

from kubehatch.api import wire
from kubehatch.api.workflow import LimitStrategy, WorkflowSpec
from kubehatch.api.workflowrun import WorkflowRunPhase
from kubehatch_operator import gates, jobs, retention
from kubehatch_operator.admission import Admission
from kubehatch_operator.clock import now
from kubehatch_operator.decisions import decide, decide_key
from kubehatch_operator.kube import Kube
from kubehatch_operator.metrics import HANDOFF_SECONDS, RECONCILE_SECONDS
from kubehatch_operator.model import Attempt, AttemptState, Decision, Gate, Run, Verdict
from kubehatch_operator.patches import merge_patch
from kubehatch_operator.settings import Settings
from kubehatch_operator.store import Key, RunEntry, Store
from kubehatch_operator.workqueue import KeyedQueue

log = logging.getLogger(__name__)


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

    @property
    def key(self) -> Key:
        return self.entry.key

    @property
    def spec(self) -> WorkflowSpec | None:
        """The spec the run follows: its snapshot once started, else the Workflow's."""
        if self.run.status.workflow_spec is not None:
            return self.run.status.workflow_spec
        return self.workflow if isinstance(self.workflow, WorkflowSpec) else None


class Reconciler:
    def __init__(self, store: Store, kube: Kube, settings: Settings) -> None:
        self.store = store
        self.kube = kube
        self.settings = settings
        self.queue: KeyedQueue[Key] = KeyedQueue("reconciling run", self._timed_reconcile)
        self.sweeps: KeyedQueue[Key] = KeyedQueue("applying the retention of workflow", self._sweep)
        self._background: set[asyncio.Task[None]] = set()
        self._admission_locks: dict[Key, asyncio.Lock] = {}

    def kick(self, key: Key) -> None:
        self.queue.kick(key)

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
        read = await self._read(key)
        if read is None:
            return None
        spec = read.spec
        phase = read.run.status.phase
        limited = (
            spec is not None
            and spec.concurrency is not None
            and not (phase is not None and phase.finished)
            and not read.run.spec.cancel
        )
        if not limited:
            return await self._apply(read, self._decide(read))
        assert spec is not None and spec.concurrency is not None
        if read.entry.started:  # only a newer run taking its slot can reach it
            return await self._apply(read, self._decide(read, self._superseded(read, spec)))
        if spec.concurrency.action and read.run.status.concurrency_key is None:
            decision = decide_key(read.run, spec, read.attempts, read.key_output, now())
            return await self._apply(read, decision)
        return await self._admit(read, spec)

    async def _read(self, key: Key) -> Pass | None:
        entry = self.store.runs.get(key)
        if entry is None:
            return None
        if entry.run is None:
            log.error("run %s/%s is not a valid WorkflowRun: %s", *key, entry.problem)
            return None
        workflow = self.store.workflows.get(entry.workflow_key)
        attempts = await self._attempts_with_messages(key)
        key_output = None
        key_attempt = next((a for a in attempts if a.step == wire.KEY_STEP), None)
        if (
            key_attempt is not None
            and key_attempt.state is AttemptState.SUCCEEDED
            and entry.run.status.concurrency_key is None
        ):
            configmap = wire.output_configmap_name(key[1], wire.KEY_STEP, key_attempt.attempt)
            key_output = str(await self.kube.read_output(key[0], configmap))
        return Pass(
            entry=entry,
            run=entry.run,
            workflow=workflow.for_decisions if workflow is not None else None,
            attempts=attempts,
            key_output=key_output,
        )

    @staticmethod
    def _decide(read: Pass, gate: Gate | None = None) -> Decision:
        return decide(read.run, read.workflow, read.attempts, now(), gate)

    def _superseded(self, read: Pass, spec: WorkflowSpec) -> Gate | None:
        """A cancel verdict for a started run that newer runs of its key pushed out.

        Recomputed from the store on every pass of the run itself, never handed over
        from another run's pass, so that a restart in between still cancels it.
        """
        assert spec.concurrency is not None
        if spec.concurrency.limit_strategy is not LimitStrategy.CANCEL_IN_PROGRESS:
            return None
        runs = self.store.runs_of(read.entry.workflow_key)
        gate, _ = gates.gate(read.key[1], runs, spec.concurrency, now())
        if gate.verdict is not Verdict.CANCEL:
            return None
        strategy = spec.concurrency.limit_strategy.value
        message = f"cancelled by the concurrency limit ({strategy}): a newer run took its slot"
        return Gate(Verdict.CANCEL, gate.key, message)

    async def _admit(self, read: Pass, spec: WorkflowSpec) -> float | None:
        """Start, queue or cancel a run that has not started, by its workflow's limit.

        Admission looks at every run of the workflow, so it runs one at a time per
        workflow: two runs never both take the last slot. The runs the verdict cancels or
        lets start are kicked, so that they act on it in their own pass.
        """
        assert spec.concurrency is not None
        workflow = read.entry.workflow_key
        admission: Admission
        async with self._admission_locks.setdefault(workflow, asyncio.Lock()):
            runs = self.store.runs_of(workflow)
            gate, admission = gates.gate(read.key[1], runs, spec.concurrency, now())
            delay = await self._apply(read, self._decide(read, gate))
        for other in {*admission.cancel, *admission.start} - {read.key[1]}:
            self.kick((workflow[0], other))
        return delay

    async def _attempts_with_messages(self, key: Key) -> list[Attempt]:
        """The run's attempts; failed ones get their pod's termination message (read once)."""
        known = self.store.attempts.get(key, {})
        for job, attempt in list(known.items()):
            if (
                attempt.state is AttemptState.FAILED
                and attempt.message is None
                and not attempt.timed_out
            ):
                message, code = await self.kube.termination_message(key[0], job)
                known[job] = dataclasses.replace(
                    attempt, message=message or "no message", permanent=code == wire.EXIT_PERMANENT
                )
        return list(known.values())

    # --- writing a decision -------------------------------------------------------------------
    async def _apply(self, read: Pass, decision: Decision) -> float | None:
        """Create, stop, record, tell: in this order, so that a crash in between redoes it."""
        key, run = read.key, read.run
        namespace, name = key
        status = decision.status
        if decision.create_input:
            await self.kube.create_configmap(
                wire.input_configmap(
                    namespace=namespace,
                    workflow=read.entry.workflow,
                    run=name,
                    run_uid=read.entry.uid,
                    input_json=json.dumps(run.spec.input),
                )
            )
        if decision.start:
            await self._start_jobs(read, decision)
        stop = set(decision.stop_jobs)
        ended = status.phase is not None and status.phase.finished
        if (
            ended
            and status.phase is not WorkflowRunPhase.SUCCEEDED
            and run.status.phase != status.phase
        ):
            # The store may not have seen every Job yet (just after a restart, its Job
            # listing can trail the run's): ask the API which of the run's Jobs still run.
            stop.update(await self.kube.active_jobs(namespace, name))
        if stop:
            await asyncio.gather(*(self.kube.delete_job(namespace, j) for j in sorted(stop)))
        patch = merge_patch(run.status.to_dict(), status.to_dict())
        if patch:
            updated = await self.kube.patch_status(wire.WORKFLOW_RUNS, namespace, name, patch)
            if updated is None:  # deleted meanwhile: nothing left to do for it
                self.store.forget_run(key)
                return None
            self.store.observe_run(updated)
        if self.settings.observability.post_events:
            for event in decision.events:
                self._in_background(
                    self.kube.post_event(read.entry.body, event.type, event.reason, event.message)
                )
        if decision.wake_at is None:
            return None
        return (decision.wake_at - now()).total_seconds()

    async def _start_jobs(self, read: Pass, decision: Decision) -> None:
        spec = decision.status.workflow_spec or read.spec
        assert spec is not None
        manifests = [
            jobs.step_job(
                namespace=read.key[0],
                workflow=read.entry.workflow,
                run=read.key[1],
                run_uid=read.entry.uid,
                spec=spec,
                start=start,
                settings=self.settings.steps,
            )
            for start in decision.start
        ]
        await asyncio.gather(*(self.kube.create_job(m) for m in manifests))
        self._observe_handoff(read.key, decision)
        for start in decision.start:
            attempt = Attempt(start.step_name, start.attempt, start.job_name, AttemptState.ACTIVE)
            self.store.note_created(read.key, attempt)

    def _observe_handoff(self, key: Key, decision: Decision) -> None:
        done = time.monotonic()
        for start in decision.start:
            seen = [self.store.succeeded_at.get((key, p)) for p in start.step.parents]
            if seen and all(t is not None for t in seen):
                HANDOFF_SECONDS.observe(done - max(t for t in seen if t is not None))

    def _in_background(self, work: Any) -> None:
        """Off the run's critical path: Events are for people, not for the next decision."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
