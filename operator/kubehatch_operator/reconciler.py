"""Read, decide, write: one reconcile of one run, serialised per run and coalesced.

Watch events (a run changed, one of its Jobs changed, its Workflow appeared) and timers
(a retry's backoff ran out, the run's deadline passed) all end in `kick(key)`. A run is
never reconciled twice at once; kicks that arrive meanwhile fold into one more pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kubehatch.api import wire
from kubehatch.api.workflow import LimitStrategy, StepSpec, WorkflowSpec
from kubehatch.api.workflowrun import WorkflowRunPhase, WorkflowRunSpec, WorkflowRunStatus
from kubehatch_operator import gates, jobs, retention
from kubehatch_operator.decisions import (
    Attempt,
    AttemptState,
    Decision,
    Gate,
    Run,
    StartAttempt,
    Verdict,
    awaiting_key,
    decide,
)
from kubehatch_operator.kube import Kube
from kubehatch_operator.metrics import HANDOFF_SECONDS, RECONCILE_SECONDS
from kubehatch_operator.patches import merge_patch
from kubehatch_operator.settings import Settings
from kubehatch_operator.store import RunKey, Store

log = logging.getLogger(__name__)
FINISHED = {"Succeeded", "Failed", "Cancelled", "TimedOut"}


@dataclasses.dataclass(frozen=True)
class Pass:
    """What one reconcile pass read: the run (raw and parsed), its Workflow, its attempts."""

    key: RunKey
    body: dict[str, Any]
    run: Run
    workflow: WorkflowSpec | str | None
    attempts: list[Attempt]

    def decide(self, gate: Gate | None = None) -> Decision:
        return decide(self.run, self.workflow, self.attempts, now(), gate)


def now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(self, store: Store, kube: Kube, settings: Settings) -> None:
        self.store = store
        self.kube = kube
        self.settings = settings
        self._active: dict[RunKey, asyncio.Task[None]] = {}
        self._dirty: set[RunKey] = set()
        self._timers: dict[RunKey, asyncio.TimerHandle] = {}
        self._sweep_timers: dict[RunKey, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._admission_locks: dict[RunKey, asyncio.Lock] = {}
        self._cancellations: dict[RunKey, Gate] = {}
        """Running runs the concurrency limit cancelled, until their own reconcile ends them."""

    # --- scheduling -----------------------------------------------------------------
    def kick(self, key: RunKey) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        self._active[key] = asyncio.get_running_loop().create_task(self._drain(key))

    async def _drain(self, key: RunKey) -> None:
        try:
            while True:
                self._dirty.discard(key)
                try:
                    with RECONCILE_SECONDS.time():
                        await self.reconcile(key)
                except Exception:
                    log.exception("reconciling run %s/%s failed; retrying in 5s", *key)
                    self._wake(key, 5.0)
                if key not in self._dirty:
                    return
        finally:
            self._active.pop(key, None)

    def _wake(self, key: RunKey, delay: float) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(delay, 0.0), self._timer_fired, key)

    def _timer_fired(self, key: RunKey) -> None:
        self._timers.pop(key, None)
        self.kick(key)

    # --- retention of finished runs ----------------------------------------------------------
    def sweep_soon(self, workflow: RunKey, delay: float = 0.5) -> None:
        """Apply the Workflow's TTL and history limit shortly: a burst of finished runs (as
        at start-up, when every run is listed) folds into one sweep."""
        old = self._sweep_timers.pop(workflow, None)
        if old is not None and delay >= old.when() - asyncio.get_running_loop().time():
            self._sweep_timers[workflow] = old  # an earlier sweep is due anyway
            return
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._sweep_timers[workflow] = loop.call_later(
            max(delay, 0.0), lambda: loop.create_task(self._sweep(workflow))
        )

    async def _sweep(self, workflow: RunKey) -> None:
        self._sweep_timers.pop(workflow, None)
        spec = self.store.workflows.get(workflow)
        if not isinstance(spec, WorkflowSpec):
            return
        ttl, limit = spec.ttl_seconds_after_finished, spec.history_limit
        if ttl is None and limit is None:
            return
        result = retention.sweep(self.store.finished_runs_of(workflow), ttl, limit, now())
        namespace = workflow[0]
        for name in result.delete:
            try:
                await self.kube.delete_run(namespace, name)
            except Exception:
                log.exception("could not delete finished run %s/%s", namespace, name)
                continue
            self.store.forget_run((namespace, name))
        if result.next_at is not None:
            self.sweep_soon(workflow, (result.next_at - now()).total_seconds() + 0.05)

    # --- one pass -----------------------------------------------------------------------
    async def reconcile(self, key: RunKey) -> None:
        body = self.store.runs.get(key)
        if body is None:
            return
        namespace, name = key
        meta = body["metadata"]
        try:
            run = Run(
                name=name,
                generation=int(meta.get("generation") or 1),
                spec=WorkflowRunSpec.model_validate(body.get("spec") or {}),
                status=WorkflowRunStatus.model_validate(body.get("status") or {}),
            )
        except ValidationError as err:
            log.error("run %s/%s is not a valid WorkflowRun: %s", namespace, name, err)
            return
        workflow = self.store.workflows.get((namespace, run.spec.workflow_ref.name))
        read = Pass(key, body, run, workflow, await self._attempts_with_messages(key))
        spec = run.status.workflow_spec or (
            workflow if isinstance(workflow, WorkflowSpec) else None
        )
        if (
            spec is None
            or spec.concurrency is None
            or run.status.phase in FINISHED
            or run.spec.cancel
        ):
            await self._apply(read, read.decide())
        elif run.status.workflow_spec is not None:  # started: only a cancellation can reach it
            await self._apply(read, read.decide(self._superseded(read, spec)))
        elif spec.concurrency.action and run.status.concurrency_key is None:
            await self._compute_key(read, spec)
        else:
            await self._admit(read, spec)

    def _runs_of(self, namespace: str, workflow: str) -> list[dict[str, Any]]:
        return [
            b
            for k, b in self.store.runs.items()
            if k[0] == namespace
            and (b.get("spec") or {}).get("workflowRef", {}).get("name") == workflow
        ]

    def _superseded(self, read: Pass, spec: WorkflowSpec) -> Gate | None:
        """A cancel verdict for a started run that newer runs of its key pushed out.

        Recomputed from the cluster's state on every pass (not only remembered from the
        newer run's admission), so that a restart in between still cancels it.
        """
        remembered = self._cancellations.pop(read.key, None)
        assert spec.concurrency is not None
        if remembered or spec.concurrency.limit_strategy is not LimitStrategy.CANCEL_IN_PROGRESS:
            return remembered
        runs = self._runs_of(read.key[0], read.run.spec.workflow_ref.name)
        gate, _ = gates.gate(read.key[1], runs, spec.concurrency, now())
        return gate if gate.verdict is Verdict.CANCEL else None

    async def _admit(self, read: Pass, spec: WorkflowSpec) -> None:
        """Start, queue or cancel a run that has not started, by its workflow's limit.

        Admission looks at every run of the workflow, so it runs one at a time per
        workflow: two runs never both take the last slot. Runs the verdict cancels or lets
        start are kicked, so that they act on it.
        """
        assert spec.concurrency is not None
        namespace, name = read.key
        workflow_key = (namespace, read.run.spec.workflow_ref.name)
        async with self._admission_locks.setdefault(workflow_key, asyncio.Lock()):
            runs = self._runs_of(namespace, workflow_key[1])
            gate, admission = gates.gate(name, runs, spec.concurrency, now())
            await self._apply(read, read.decide(gate))
        strategy = spec.concurrency.limit_strategy.value
        for other in admission.cancel:
            if other != name and self._started((namespace, other)):
                self._cancellations[(namespace, other)] = Gate(
                    Verdict.CANCEL,
                    None,
                    f"cancelled by the concurrency limit ({strategy}): a newer run took its slot",
                )
                self.kick((namespace, other))
        for other in admission.start:
            if other != name:
                self.kick((namespace, other))

    async def _compute_key(self, read: Pass, spec: WorkflowSpec) -> None:
        """Run the workflow's key action in a pod of its own, then record the key it returned.

        The key decides admission, so it is known before the run starts; the pod is a step
        in all but name (its Job, input and output follow the same conventions).
        """
        key, body, run = read.key, read.body, read.run
        namespace, name = key
        assert spec.concurrency is not None and spec.concurrency.action is not None
        attempt = next((a for a in read.attempts if a.step == wire.KEY_STEP), None)
        if attempt is None:
            uid = body["metadata"]["uid"]
            await self.kube.create_configmap(
                wire.input_configmap(
                    namespace=namespace,
                    workflow=run.spec.workflow_ref.name,
                    run=name,
                    run_uid=uid,
                    input_json=json.dumps(run.spec.input),
                )
            )
            step = StepSpec(name="key", action=spec.concurrency.action)
            start = StartAttempt(step, 1, wire.job_name(name, wire.KEY_STEP, 1), {})
            manifest = jobs.step_job(
                namespace=namespace, workflow=run.spec.workflow_ref.name, run=name, run_uid=uid,
                spec=spec, start=start, settings=self.settings, step_name=wire.KEY_STEP,
            )  # fmt: skip
            await self.kube.create_job(manifest)
            self.store.note_created(
                key, Attempt(wire.KEY_STEP, 1, start.job_name, AttemptState.ACTIVE)
            )
            message = f"running the key action {spec.concurrency.action!r} (job {start.job_name})"
            await self._write_status(key, run, awaiting_key(run, message))
        elif attempt.state is AttemptState.SUCCEEDED:
            output = await self.kube.read_output(
                namespace, wire.output_configmap_name(name, wire.KEY_STEP, 1)
            )
            status = run.status.model_copy(update={"concurrency_key": str(output)})
            await self._write_status(key, run, status)
            self.kick(key)  # now admission can place it
        elif attempt.state is AttemptState.FAILED:
            why = (
                f"the concurrency key action {spec.concurrency.action!r} failed: {attempt.message}"
            )
            await self._apply(read, read.decide(Gate(Verdict.FAIL, None, why)))

    async def _write_status(self, key: RunKey, run: Run, status: WorkflowRunStatus) -> None:
        patch = merge_patch(run.status.to_dict(), status.to_dict())
        if patch:
            self.store.observe_run(await self.kube.patch_run_status(*key, patch))

    def _started(self, key: RunKey) -> bool:
        body = self.store.runs.get(key)
        return bool(body and (body.get("status") or {}).get("workflowSpec"))

    async def _attempts_with_messages(self, key: RunKey) -> list[Attempt]:
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

    def _observe_handoff(self, key: RunKey, decision: Decision) -> None:
        done = time.monotonic()
        for start in decision.start:
            seen = [self.store.succeeded_at.get((key, p)) for p in start.step.parents]
            if seen and all(t is not None for t in seen):
                HANDOFF_SECONDS.observe(done - max(t for t in seen if t is not None))

    async def _apply(self, read: Pass, decision: Decision) -> None:
        key, body, run = read.key, read.body, read.run
        namespace, name = key
        uid = body["metadata"]["uid"]
        status = decision.status
        if decision.create_input:
            await self.kube.create_configmap(
                wire.input_configmap(
                    namespace=namespace,
                    workflow=run.spec.workflow_ref.name,
                    run=name,
                    run_uid=uid,
                    input_json=json.dumps(run.spec.input),
                )
            )
        if decision.start:
            spec = status.workflow_spec
            assert spec is not None
            manifests = [
                jobs.step_job(
                    namespace=namespace,
                    workflow=run.spec.workflow_ref.name,
                    run=name,
                    run_uid=uid,
                    spec=spec,
                    start=s,
                    settings=self.settings,
                )
                for s in decision.start
            ]
            await asyncio.gather(*(self.kube.create_job(m) for m in manifests))
            self._observe_handoff(key, decision)
            for s in decision.start:
                self.store.note_created(
                    key, Attempt(s.step.name, s.attempt, s.job_name, AttemptState.ACTIVE)
                )
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
        await self._write_status(key, run, status)
        if self.settings.post_events and decision.events:
            # Off the run's critical path: Events are for people, not for the next decision.
            for e in decision.events:
                task = asyncio.get_running_loop().create_task(
                    self.kube.post_event(body, e.type, e.reason, e.message)
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        if decision.wake_at is not None:
            self._wake(key, (decision.wake_at - now()).total_seconds())
