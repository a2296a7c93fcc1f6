"""Child runs' I/O: what a pass reads about them, and how their decisions are applied.

The decisions are children.py's. Here, before a pass decides: the spawn request in the
output of each succeeded attempt whose output the step pod marked as one (the output
watch sees the annotation, `Store.spawn_request`; in any Workflow: one without
``spec.spawns`` fails the step) or, in a Workflow with ``spec.spawns``, whose output the
watch did not see (read once: it never changes; an output too large to read is no
request); outputs seen unmarked are never read. For a request: each child
run's state: from the store while it runs, from the API once it finished (read once,
then remembered), and its leaf steps' outputs only in the pass where every child has
succeeded. After it decides, and before the status is written: the children's results
stored as the step's output, the child runs created, and the children of steps that are
over cancelled. A child run that finishes wakes its parent (`wake_parent`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubehatch.api import spawns, wire
from kubehatch.api.workflowrun import (
    StepPhase,
    TriggeredBy,
    TriggerType,
    WorkflowRun,
    WorkflowRunPhase,
    WorkflowRunStatus,
)
from kubehatch.errors import OutputTooLargeError
from kubehatch_operator.children import (
    child_names,
    outputs_to_keep,
    parse_request,
    to_cancel,
    to_create,
)
from kubehatch_operator.clock import now
from kubehatch_operator.entries import Key
from kubehatch_operator.kube import Kube, api_message, refused
from kubehatch_operator.model import (
    Attempt,
    AttemptState,
    ChildPhase,
    ChildState,
    CreateChild,
    Decision,
    Spawned,
    SpawnRequest,
    StepOutput,
)
from kubehatch_operator.reading import Pass
from kubehatch_operator.store import Store

log = logging.getLogger(__name__)

FINISHED = frozenset(p.value for p in WorkflowRunPhase if p.finished)
REMEMBERED = 50_000
"""Spawn requests and finished children kept in memory (small: no outputs), oldest out."""


@dataclasses.dataclass(frozen=True)
class _Ended:
    """A finished child, as remembered: its state, and where its leaf outputs are."""

    state: ChildState
    leaves: tuple[str, ...]
    outputs: tuple[tuple[str, str | None], ...]
    """(leaf step, its output ConfigMap) for a succeeded child."""


class Spawns:
    def __init__(self, store: Store, kube: Kube, kick: Callable[[Key], None]) -> None:
        self.store = store
        self.kube = kube
        self.kick = kick
        self._requests: OrderedDict[tuple[str, str], SpawnRequest | str | None] = OrderedDict()
        self._ended: OrderedDict[tuple[str, str], _Ended] = OrderedDict()

    # --- reading ------------------------------------------------------------------------
    async def read(self, read: Pass) -> Pass:
        """The pass, with the spawn requests and children of its waiting steps."""
        status = read.run.status
        spec = status.workflow_spec
        if spec is None or (status.phase and status.phase.finished):
            return read
        latest: dict[str, Attempt] = {}
        for attempt in read.attempts:
            step = status.steps.get(attempt.step)
            if step is None or step.phase.finished:
                continue
            known = latest.get(attempt.step)
            if known is None or attempt.attempt > known.attempt:
                latest[attempt.step] = attempt
        waiting = [
            attempt
            for attempt in latest.values()
            if attempt.state is AttemptState.SUCCEEDED and self._may_spawn(read, attempt)
        ]
        if not waiting:
            return read
        spawned = await asyncio.gather(*(self._spawned(read, a) for a in waiting))
        replaced = {
            a.job_name: dataclasses.replace(a, spawn=s)
            for a, s in zip(waiting, spawned, strict=True)
            if s is not None
        }
        if not replaced:
            return read
        attempts = [replaced.get(a.job_name, a) for a in read.attempts]
        return dataclasses.replace(read, attempts=attempts)

    def _may_spawn(self, read: Pass, attempt: Attempt) -> bool:
        """Whether a succeeded attempt's output may be a spawn request: marked so (the
        output watch saw its annotation, in any Workflow: one without ``spawns`` fails a
        step that asks for children), or, in a Workflow with ``spawns``, not seen by the
        watch (then it is read). An output seen without the mark is never read, nor one
        of a Workflow without ``spawns`` that the watch missed (it stays a plain output)."""
        if attempt.output is not None:  # it ran on a pool: its output is at hand
            return spawns.is_spawn_request(json.loads(attempt.output))
        configmap = wire.output_configmap_name(attempt.job_name)
        marked = self.store.spawn_request(read.entry.uid, configmap)
        spec = read.run.status.workflow_spec
        return marked if marked is not None else bool(spec is not None and spec.spawns)

    async def _request(self, read: Pass, attempt: Attempt) -> SpawnRequest | str | None:
        """The spawn request in the attempt's output (read once: it never changes). An
        output too large for the operator to read is no request, unless it is marked as
        one (then the step fails, saying so)."""
        key = (read.entry.uid, attempt.job_name)
        if key not in self._requests:
            configmap = wire.output_configmap_name(attempt.job_name)
            try:
                output = (
                    json.loads(attempt.output)
                    if attempt.output is not None
                    else await self.kube.read_output(read.key[0], configmap)
                )
                request = parse_request(output)
            except OutputTooLargeError as error:
                marked = self.store.spawn_request(read.entry.uid, configmap)
                request = str(error) if marked else None
            _remember(self._requests, key, request)
        return self._requests[key]

    async def _spawned(self, read: Pass, attempt: Attempt) -> Spawned | None:
        namespace, uid = read.key[0], read.entry.uid
        request = await self._request(read, attempt)
        if request is None:
            return None
        if isinstance(request, str):
            return Spawned(None, request)
        spec = read.run.status.workflow_spec
        assert spec is not None
        if spawns.not_allowed([child.workflow for child in request.runs], spec.spawns):
            return Spawned(request)  # the step fails: no child is looked for
        created = read.run.status.steps[attempt.step].child_runs is not None
        names = child_names(read.run, attempt.step, request, attempt.attempt)
        states = list(
            await asyncio.gather(*(self._child(namespace, uid, n, created) for n in names))
        )
        if names and all(s.phase is ChildPhase.SUCCEEDED for s in states):
            states = list(await asyncio.gather(*(self._result(namespace, uid, s) for s in states)))
        return Spawned(request, None, tuple(states))

    async def _child(self, namespace: str, uid: str, name: str, created: bool) -> ChildState:
        """A child's state: from the store while it runs, else from the API (once final).

        Before the step recorded its children, only the store is asked: the creates that
        follow find any child made by a pass a crash cut short (409, then its owner)."""
        entry = self.store.runs.get((namespace, name))
        if entry is not None:
            owner = wire.run_owner(entry.body)
            mine = owner is not None and owner[1] == uid
            return ChildState(name, ChildPhase.ACTIVE if mine else ChildPhase.FOREIGN)
        ended = self._ended.get((uid, name))
        if ended is not None:
            return ended.state
        if not created:
            return ChildState(name, ChildPhase.ABSENT)
        body = await self.kube.read_run(namespace, name)
        if body is None:
            return ChildState(name, ChildPhase.ABSENT)
        return self._state(uid, name, body)

    def _state(self, uid: str, name: str, body: dict[str, Any]) -> ChildState:
        owner = wire.run_owner(body)
        if owner is None or owner[1] != uid:
            return ChildState(name, ChildPhase.FOREIGN)
        raw = wire.mapping(body.get("status"))
        if raw.get("phase") not in FINISHED:
            return ChildState(name, ChildPhase.ACTIVE)
        status = WorkflowRunStatus.model_validate(raw)
        assert status.phase is not None
        condition = next((c for c in status.conditions if c.type == "Succeeded"), None)
        message = condition.message if condition is not None else None
        succeeded = status.phase is WorkflowRunPhase.SUCCEEDED
        phase = ChildPhase.SUCCEEDED if succeeded else ChildPhase.FAILED
        state = ChildState(name, phase, status.phase.value, message)
        names: tuple[str, ...] = ()
        outputs: tuple[tuple[str, str | None], ...] = ()
        if succeeded and status.workflow_spec is not None:
            names = tuple(spawns.leaves(status.workflow_spec))
            outputs = tuple(
                (leaf, s.output_config_map if (s := status.steps.get(leaf)) else None)
                for leaf in names
            )
        _remember(self._ended, (uid, name), _Ended(state, names, outputs))
        return state

    async def _result(self, namespace: str, uid: str, state: ChildState) -> ChildState:
        """A succeeded child with its result (its leaf steps' outputs)."""
        ended = self._ended.get((uid, state.name))
        if ended is None:  # seen Succeeded but forgotten meanwhile: read it again
            body = await self.kube.read_run(namespace, state.name)
            if body is None:
                return ChildState(state.name, ChildPhase.ABSENT)
            self._state(uid, state.name, body)
            ended = self._ended.get((uid, state.name))
            if ended is None:
                return state
        read = [self.kube.read_output(namespace, cm) if cm else _none() for _, cm in ended.outputs]
        values = await asyncio.gather(*read)
        by_leaf = {leaf: value for (leaf, _), value in zip(ended.outputs, values, strict=True)}
        return dataclasses.replace(state, output=spawns.result_of(ended.leaves, by_leaf))

    # --- applying -----------------------------------------------------------------------
    async def apply(self, read: Pass, decision: Decision) -> Decision:
        """Store outputs, create children and cancel those of ended steps: before the
        status is written, so that no status names an output or counts children that
        are not there."""
        namespace = read.key[0]
        for output in outputs_to_keep(decision):
            await self.kube.create_configmap(self._output(read, output))
        creates = to_create(decision)
        results = await asyncio.gather(
            *(self.kube.create_run(self._child_run(read, c)) for c in creates),
            return_exceptions=True,
        )
        failed = False
        for create, result in zip(creates, results, strict=True):
            problem = None
            if isinstance(result, BaseException):
                if not refused(result):
                    raise result
                problem = f"could not create child run {create.name}: {_why(result)}"
            elif result is None:  # there already: made by an earlier pass, or by someone else
                body = await self.kube.read_run(namespace, create.name)
                owner = wire.run_owner(body) if body is not None else None
                if body is not None and (owner is None or owner[1] != read.entry.uid):
                    problem = (
                        f"a run named {create.name} exists that this run did not spawn; "
                        "delete it, then start the run again"
                    )
            if problem is not None:
                failed = True
                _fail(decision, create.step, problem)
        cancel = set(to_cancel(decision.status, read.attempts))
        # Children just created for a step that failed meanwhile go too.
        cancel.update(c.name for c in creates if decision.status.steps[c.step].phase.finished)
        if cancel:
            await self._cancel(namespace, sorted(cancel))
        if failed:
            self.kick(read.key)  # the next pass carries the failure on
        return decision

    async def _cancel(self, namespace: str, names: list[str]) -> None:
        await asyncio.gather(*(self._cancel_one(namespace, name) for name in names))

    async def _cancel_one(self, namespace: str, name: str) -> None:
        """Set a child run's spec.cancel; one that is gone is done."""
        await self.kube.patch_run(namespace, name, {"spec": {"cancel": True}})

    @staticmethod
    def _child_run(read: Pass, create: CreateChild) -> dict[str, Any]:
        run, (namespace, name) = read.run, read.key
        spec = run.status.workflow_spec
        default = spec.default_priority if spec is not None else None
        manifest = WorkflowRun.of(
            create.request.workflow,
            create.request.input,
            name=create.name,
            namespace=namespace,
            triggered_by=TriggeredBy(type=TriggerType.PARENT, source=f"{name}/{create.step}"),
            labels={
                wire.LABEL_PARENT_RUN: wire.label_value(name),
                wire.LABEL_PARENT_STEP: wire.label_value(create.step),
                wire.LABEL_CHILD_INDEX: str(create.index),
            },
            priority=run.spec.priority or default,
            additional_metadata=dict(run.spec.additional_metadata),
        ).to_manifest()
        manifest["metadata"]["ownerReferences"] = [
            wire.owner_reference("WorkflowRun", name, read.entry.uid)
        ]
        return manifest

    @staticmethod
    def _output(read: Pass, output: StepOutput) -> dict[str, Any]:
        namespace, name = read.key
        step = wire.label_value(output.step)
        labels = {**wire.run_labels(read.entry.workflow, name), wire.LABEL_STEP: step}
        owner = wire.owner_reference("WorkflowRun", name, read.entry.uid, controller=False)
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": output.configmap,
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [owner],
            },
            "data": {wire.OUTPUT_KEY: output.text},
        }

    # --- waking parents -----------------------------------------------------------------
    def wake_parent(self, body: dict[str, Any]) -> None:
        """A run finished or went: if it is a child run, its parent takes a pass."""
        meta = body.get("metadata") or {}
        if wire.LABEL_PARENT_RUN not in (meta.get("labels") or {}):
            return
        owner = wire.run_owner(body)
        if owner is None:
            return
        key = (str(meta.get("namespace", "")), owner[0])
        entry = self.store.runs.get(key)
        if entry is not None and entry.uid == owner[1]:
            self.kick(key)


def _fail(decision: Decision, step: str, message: str) -> None:
    """A step whose children could not be made or stored fails (the next pass goes on)."""
    current = decision.status.steps[step]
    decision.status.steps[step] = current.model_copy(
        update={
            "phase": StepPhase.FAILED,
            "finished_at": now(),
            "message": message,
            "next_attempt_at": None,
        }
    )
    log.warning("step %s: %s", step, message)


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > REMEMBERED:
        cache.popitem(last=False)


async def _none() -> None:
    return None


def _why(err: BaseException) -> str:
    return api_message(err) if isinstance(err, ApiException) else str(err)
