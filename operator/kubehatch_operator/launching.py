"""Making and stopping what runs attempts: a Job per attempt, or a WorkerTask on a pool.

The reconciler decides; this writes. The two modes differ only here and in the store's
reading of the objects (`entries.attempt_from_job`, `tasks.attempt_from_task`): a step
on a pool gets a WorkerTask that carries its input and its parents' outputs, and its
output comes back in the task's status, which this stores as the ConfigMap a step pod
would have written, before the status that names it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubehatch.api import wire
from kubehatch.api.workerpool import DEFAULT_LEASE_SECONDS
from kubehatch.api.workflow import WorkflowSpec
from kubehatch.api.workflowrun import WorkflowRunPhase
from kubehatch.errors import KubehatchError
from kubehatch_operator import jobs, tasks
from kubehatch_operator.clock import now
from kubehatch_operator.entries import Key, RunEntry
from kubehatch_operator.kube import ForeignObjectError, Kube, api_message, refused
from kubehatch_operator.metrics import HANDOFF_SECONDS
from kubehatch_operator.model import Attempt, AttemptState, Decision, StartAttempt
from kubehatch_operator.reading import Pass
from kubehatch_operator.settings import Settings
from kubehatch_operator.store import Store

MAX_TASK_BYTES = 1024 * 1024
"""The most a WorkerTask may weigh: etcd refuses objects past 1.5 MiB, with a 500."""


def pool_of(spec: WorkflowSpec, start: StartAttempt) -> str | None:
    """The pool an attempt runs on; never the concurrency key's pseudo-step (its output is
    read before the run's steps start, from the ConfigMap its Job's pod writes)."""
    return None if start.step_name == wire.KEY_STEP else spec.step_pool(start.step)


class Refused(KubehatchError):
    """What a WorkerTask needs cannot be had (a parent's output too large to hand over)."""


class Launcher:
    def __init__(
        self,
        store: Store,
        kube: Kube,
        settings: Settings,
        kick: Callable[[Key], None],
        in_background: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.store = store
        self.kube = kube
        self.settings = settings
        self.kick = kick
        self.in_background = in_background

    # --- stopping -----------------------------------------------------------------------
    async def stop(self, read: Pass, decision: Decision) -> bool:
        """Delete the Jobs and tasks of stopped attempts (all still running, when the run
        ends Failed or Cancelled), and mark the tasks whose worker was lost; False when a
        task changed since it was read (renewed, reported): then nothing else is written,
        and the next pass decides on what the task says now."""
        namespace, name = read.key
        status = decision.status
        by_name = {a.job_name: a for a in read.attempts}
        stop = set(decision.stop_jobs)
        if (
            status.phase is not None
            and status.phase.finished
            and status.phase is not WorkflowRunPhase.SUCCEEDED
            and read.run.status.phase != status.phase
        ):
            # Ask the API which Jobs still run (after a restart, the store's Job listing can
            # trail); an attempt whose output is in is done, though its Job is not complete.
            done = {a.job_name for a in read.attempts if a.state is AttemptState.SUCCEEDED}
            on_pools = set()
            spec = status.workflow_spec or read.spec
            if spec is not None and any(spec.step_pool(s) for s in spec.all_steps):
                on_pools = set(await self.kube.pools.active_tasks(namespace, name))
            stop.update((set(await self.kube.active_jobs(namespace, name)) | on_pools) - done)
        else:
            on_pools = set()
        marks = [
            self.kube.pools.mark_task(
                namespace,
                task,
                tasks.lost_patch(_message(by_name, task), now(), _version(by_name, task)),
            )
            for task in decision.lost_tasks
        ]
        if not all(await asyncio.gather(*marks)):
            return False
        await asyncio.gather(
            *(
                self.kube.pools.delete_task(namespace, job)
                if job in on_pools or _pooled(by_name.get(job))
                else self.kube.delete_job(namespace, job)
                for job in sorted(stop)
            ),
        )
        return True

    # --- outputs of attempts on pools ---------------------------------------------------------
    async def store_outputs(self, read: Pass, decision: Decision) -> None:
        """Write the outputs of pool attempts that succeeded, as a step pod writes its own
        (parts before their head), once: before any status names them."""
        known = self.store.attempts_of(read.entry)
        for attempt in read.attempts:
            if not (attempt.pool and attempt.output_configmaps):
                continue
            for body in attempt.output_configmaps:
                await self.kube.create_configmap(body)
            current = known.get(attempt.job_name)
            if current is not None and current.output_configmaps:
                known[attempt.job_name] = dataclasses.replace(current, output_configmaps=())

    # --- making ---------------------------------------------------------------------------
    @staticmethod
    def all_on_pools(read: Pass, decision: Decision) -> bool:
        """Whether every attempt to start runs on a pool (none mounts a parent's output)."""
        spec = decision.status.workflow_spec or read.spec
        return spec is not None and all(pool_of(spec, s) for s in decision.start)

    def create(self, read: Pass, decision: Decision) -> list[asyncio.Task[bool]]:
        """Start creating the decided Jobs and tasks (asyncio tasks: they leave at once)."""
        spec = decision.status.workflow_spec or read.spec
        assert spec is not None
        loop = asyncio.get_running_loop()
        return [
            loop.create_task(
                self._create_task(read, decision, spec, start, pool)
                if (pool := pool_of(spec, start))
                else self.kube.create_job(self._job(read, decision, spec, start))
            )
            for start in decision.start
        ]

    async def created(
        self, read: Pass, decision: Decision, creates: list[asyncio.Task[bool]]
    ) -> None:
        """Record what was created; what the API server refused fails its attempt for good."""
        results = await asyncio.gather(*creates, return_exceptions=True)
        self._observe_handoff(read.entry, decision)
        refusals = 0
        spec = decision.status.workflow_spec or read.spec
        for start, result in zip(decision.start, results, strict=True):
            pool = pool_of(spec, start) if spec is not None else None
            attempt = Attempt(
                start.step_name, start.attempt, start.job_name, AttemptState.ACTIVE, pool=pool
            )
            if isinstance(result, BaseException):
                if not (refused(result) or isinstance(result, (ForeignObjectError, Refused))):
                    raise result
                kind = "WorkerTask" if pool else "Job"
                why = f"the API server refused its {kind}: {describe(result)}"
                if isinstance(result, Refused):
                    why = str(result)
                attempt = dataclasses.replace(
                    attempt,
                    state=AttemptState.FAILED,
                    message=why,
                    permanent=True,
                    finished_at=now(),
                )
                self.store.attempts_of(read.entry)[start.job_name] = attempt
                refusals += 1
                self.in_background(
                    self.kube.post_event(read.entry.body, "Warning", f"{kind}Refused", why)
                )
            else:
                self.store.note_created(read.entry, attempt)
        if refusals:
            self.kick(read.key)  # the next pass records the failures

    def _job(
        self, read: Pass, decision: Decision, spec: WorkflowSpec, start: StartAttempt
    ) -> dict[str, Any]:
        return jobs.step_job(
            namespace=read.key[0],
            workflow=read.entry.workflow,
            run=read.key[1],
            run_uid=read.entry.uid,
            spec=spec,
            start=start,
            settings=self.settings.steps,
            priority=spec.run_priority(read.run.spec.priority),
            output_parts=self.store.output_parts.get(read.entry.uid),
            additional_metadata=read.run.spec.additional_metadata,
            input_json=_inline_input(read, decision),
        )

    async def _create_task(
        self, read: Pass, decision: Decision, spec: WorkflowSpec, start: StartAttempt, pool: str
    ) -> bool:
        namespace = read.key[0]
        view = self.store.pools.get((namespace, pool))
        parents, input_json = await asyncio.gather(
            self._parent_outputs(read, start), self._input_json(read)
        )
        env = jobs.attempt_env(
            namespace=namespace,
            workflow=read.entry.workflow,
            run=read.key[1],
            run_uid=read.entry.uid,
            spec=spec,
            start=start,
            additional_metadata=read.run.spec.additional_metadata,
        )
        body = tasks.worker_task(
            env=env,
            start=start,
            pool=pool,
            input_json=input_json,
            parents=parents,
            lease_seconds=view.lease_seconds if view is not None else DEFAULT_LEASE_SECONDS,
        )
        size = len(json.dumps(body).encode())
        if size > MAX_TASK_BYTES:
            raise Refused(
                f"step {start.step_name!r}: its input and its parents' outputs come to {size} "
                f"bytes, more than a WorkerTask holds ({MAX_TASK_BYTES}); pass references "
                "(an object-storage URL), or run the step in a Job of its own (pool: '')"
            )
        return await self.kube.pools.create_task(body)

    async def _input_json(self, read: Pass) -> str:
        if read.entry.input_elided:  # a large input: the store keeps none
            return json.dumps(await self.kube.read_run_input(*read.key))
        return json.dumps(read.run.spec.input or {})

    async def _parent_outputs(self, read: Pass, start: StartAttempt) -> dict[str, str]:
        """Each parent's output as JSON: a pool parent's from its task (in the store), any
        other's read from its ConfigMap (cached: outputs never change)."""
        attempts = self.store.attempts_of(read.entry)

        async def one(parent: str, configmap: str) -> tuple[str, str]:
            attempt = attempts.get(configmap.removesuffix("-output"))
            if attempt is not None and attempt.output is not None:
                return parent, attempt.output
            if not configmap:
                return parent, "null"
            cache, key = self.store.outputs, (read.key[0], configmap)
            found, value = cache.get(key)
            if not found:
                try:
                    value = await self.kube.read_output(read.key[0], configmap)
                except KubehatchError as err:
                    raise Refused(
                        f"the output of step {parent!r} cannot be handed to a worker: {err}; "
                        f"run step {start.step_name!r} in a Job of its own (pool: '')"
                    ) from err
                except ApiException as err:
                    if err.status != 404:
                        raise
                    value = None
                cache.put(key, value)
            return parent, json.dumps(value)

        found = await asyncio.gather(*(one(p, cm) for p, cm in start.parents.items()))
        return dict(found)

    def _observe_handoff(self, entry: RunEntry, decision: Decision) -> None:
        done = time.monotonic()
        for start in decision.start:
            seen = [self.store.succeeded_at.get((entry.uid, p)) for p in start.step.parents]
            if seen and all(t is not None for t in seen):
                HANDOFF_SECONDS.observe(done - max(t for t in seen if t is not None))


def _pooled(attempt: Attempt | None) -> bool:
    return attempt is not None and bool(attempt.pool)


def _version(by_name: dict[str, Attempt], task: str) -> int:
    attempt = by_name.get(task)
    return attempt.resource_version if attempt is not None else 0


def _message(by_name: dict[str, Attempt], task: str) -> str:
    attempt = by_name.get(task)
    if attempt is not None and attempt.state is AttemptState.ACTIVE:
        attempt = tasks.lost(attempt, now())
    return (attempt.message if attempt else None) or "its worker stopped renewing its claim"


def _inline_input(read: Pass, decision: Decision) -> str | None:
    """The input for the step pods' annotation; None: they mount its ConfigMap."""
    stored = decision.status.input_config_map is not None or read.entry.input_elided
    return None if stored else wire.inline_input(read.run.spec.input)


def describe(err: BaseException) -> str:
    return api_message(err) if isinstance(err, ApiException) else str(err)
