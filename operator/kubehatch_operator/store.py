"""The operator's in-memory view of the cluster, fed by watch events.

It holds only what reconciling needs: unfinished runs, parsed once into a `RunEntry`;
one small `Attempt` per step Job; Workflows with their parsed spec. Finished runs are
dropped to a name and a time, so memory stays flat with thousands of finished runs.
Every controller (runs, triggers) reads this one store.
"""

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubehatch.api import outputs, spawns, wire
from kubehatch.api.workflowrun import WorkflowRunPhase
from kubehatch_operator.approvals import ApprovalLog
from kubehatch_operator.entries import (
    Key,
    RunEntry,
    WorkflowEntry,
    is_shared,
    older,
    resource_version,
    workflow_of,
)
from kubehatch_operator.event_log import EventLog
from kubehatch_operator.model import Attempt, AttemptState
from kubehatch_operator.output_cache import OutputCache
from kubehatch_operator.ratelimits import RateLog
from kubehatch_operator.retention import FinishedRun
from kubehatch_operator.tasks import PoolView, attempt_of, seen_lease

__all__ = ["Key", "Store"]

FINISHED_PHASES = frozenset(p.value for p in WorkflowRunPhase if p.finished)
_EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass
class Store:
    runs: dict[Key, RunEntry] = field(default_factory=dict)
    """Unfinished runs."""
    attempts: dict[str, dict[str, Attempt]] = field(default_factory=lambda: defaultdict(dict))
    """Per run uid, its step attempts by Job name: a run re-created under the same name
    never sees its predecessor's Jobs."""
    workflows: dict[Key, WorkflowEntry] = field(default_factory=dict)
    succeeded_at: dict[tuple[str, str], float] = field(default_factory=dict)
    """When (monotonic clock) this process saw each step's Job succeed: for the handoff metric."""
    finished: dict[Key, FinishedRun] = field(default_factory=dict)
    """Finished runs, reduced to what retention needs."""
    primed: bool = False
    """Filled from a full listing: until then, nothing is admitted against a partial view."""
    lingering: dict[str, RunEntry] = field(default_factory=dict)
    """By uid: finished runs whose pods still run (see `Attempt.live`); their Jobs are
    still followed, and they hold their concurrency slot until the last pod stops."""
    rates: RateLog = field(default_factory=RateLog)
    outputs: OutputCache = field(default_factory=OutputCache)
    events: EventLog = field(default_factory=EventLog)
    """Recent WorkflowEvents, and the runs waiting for them (steps with wait.event)."""
    approvals: ApprovalLog = field(default_factory=ApprovalLog)
    """WorkflowApprovals of unfinished runs, by run and step (steps with wait.approval)."""
    """Outputs read for conditions and forEach lists (they never change)."""
    """Rate limit units taken, rebuilt from every step Job listed or watched."""
    output_parts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    """Per run uid, the number of parts (0: not split) of each output ConfigMap seen, by
    name: what a child's Job projects (see `jobs.step_job`; unknown ones get every part
    that may exist)."""
    spawn_outputs: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Per run uid, the output ConfigMaps seen marked as spawn requests (see
    `spawn_request`)."""
    pools: dict[Key, PoolView] = field(default_factory=dict)
    """WorkerPools, by (namespace, name): what their waiting tasks' messages tell."""
    workflows_version: int = 0
    """The newest resourceVersion the Workflow watch delivered: every Workflow change
    before it is in `workflows` (a watch delivers changes in order)."""
    on_leave: Callable[[RunEntry], None] | None = None
    """Called when an unfinished run finishes or goes, by whatever write or event told:
    its concurrency slot may be free."""
    _by_workflow: dict[Key, dict[Key, None]] = field(default_factory=lambda: defaultdict(dict))
    """Unfinished runs per workflow: admission reads them without scanning every run."""
    _by_group: dict[tuple[Key, str | None], dict[Key, None]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    """Unfinished runs per (workflow, recorded concurrency key; None before it is known):
    a key's admission reads its own runs only, in about the order they arrived (which
    makes sorting them by arrival cheap)."""
    _finished_by_workflow: dict[Key, dict[Key, None]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _sharing: dict[Key, dict[Key, None]] = field(default_factory=lambda: defaultdict(dict))
    """Workflows per scope (see `scope`): shared limits' members."""

    # --- runs ---------------------------------------------------------------------------
    def observe_run(self, body: dict[str, Any], deleted: bool = False) -> Key:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if deleted:
            self.forget_run(key)
            return key
        version = resource_version(body)
        if key in self.finished:
            if version is None or version <= self.finished[key].version:
                return key  # an older event arriving late must not bring the run back
            if _finished(body):
                return key
            self.forget_run(key)  # retried: unfinished again
        current = self.runs.get(key)
        if current is not None and older(body, current.body):
            return key  # a watch event older than the response of our own write
        if current is not None and version is not None and version == current.resource_version:
            return key  # the watch's echo of our own write: parsed already
        status = wire.mapping(body.get("status"))
        if _finished(body):
            # Read without parsing: at start-up there may be 20,000 of them, and retention
            # needs a name and a time only.
            self._drop(key)
            workflow = workflow_of(body)
            at = wire.parse_time(status.get("finishedAt")) or wire.parse_time(
                meta.get("creationTimestamp")
            )
            self.finished[key] = FinishedRun(key[1], workflow[1], at or _EPOCH, version or 0)
            self._finished_by_workflow[workflow][key] = None
            return key
        entry = RunEntry.parse(body)
        if current is not None and _group(current) != _group(entry):
            self._unindex(current)
        self.runs[key] = entry
        self._by_workflow[entry.workflow_key][key] = None
        self._by_group[_group(entry)][key] = None
        return key

    def forget_run(self, key: Key) -> None:
        self._drop(key)
        gone = self.finished.pop(key, None)
        if gone is not None:
            _discard(self._finished_by_workflow, (key[0], gone.workflow), key)

    def _unindex(self, entry: RunEntry) -> None:
        _discard(self._by_workflow, entry.workflow_key, entry.key)
        _discard(self._by_group, _group(entry), entry.key)

    def _drop(self, key: Key) -> None:
        entry = self.runs.pop(key, None)
        if entry is None:
            return
        self._unindex(entry)
        if self.live_jobs(entry):
            # Finished (its last step's output is written) while a pod still runs: it
            # keeps its slot until its Jobs say their pods are gone.
            self.lingering[entry.uid] = entry
            return
        self._leave(entry)

    def _leave(self, entry: RunEntry) -> None:
        self.lingering.pop(entry.uid, None)
        self.output_parts.pop(entry.uid, None)
        self.spawn_outputs.pop(entry.uid, None)
        for attempt in self.attempts.pop(entry.uid, {}).values():
            self.succeeded_at.pop((entry.uid, attempt.step), None)
        if self.on_leave is not None:
            self.on_leave(entry)

    def linger(self, body: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        """A finished run whose pods still run, found at start-up from its live Jobs: it
        holds its slot until they stop, as if this process had seen it finish."""
        entry = RunEntry.parse(body)
        if entry.key in self.runs or entry.uid in self.lingering:
            return
        self.lingering[entry.uid] = entry
        for job in jobs:
            self.observe_job(job)
        self._settle(entry.uid)

    def _settle(self, uid: str) -> None:
        """A lingering run whose last pod has stopped leaves, freeing its slot."""
        entry = self.lingering.get(uid)
        if entry is not None and not self.live_jobs(entry):
            self._leave(entry)

    def attempts_of(self, entry: RunEntry) -> dict[str, Attempt]:
        """The run's attempts by Job name (a live view: the reconciler adds messages)."""
        return self.attempts[entry.uid]

    def live_jobs(self, entry: RunEntry) -> bool:
        """Whether any of the run's step Jobs still runs: then it holds its slot, whatever
        its status says (a status write lost in a crash must not free it). The key action's
        pod comes before admission and holds nothing."""
        return self.live_uid(entry.uid)

    def live_uid(self, uid: str) -> bool:
        """`live_jobs` of the run with this uid."""
        return any(a.live and a.step != wire.KEY_STEP for a in self.attempts.get(uid, {}).values())

    def runs_of(self, workflow: Key) -> list[RunEntry]:
        """The workflow's unfinished runs."""
        return [self.runs[k] for k in self._by_workflow.get(workflow, ())]

    def contending(self, workflow: Key, key: str | None = None) -> list[RunEntry]:
        """The runs that hold or want the workflow's slots (of one concurrency key, if
        given, plus those whose key is not known yet): the unfinished ones, and the
        finished ones whose pods still run."""
        lingering = [
            e
            for e in self.lingering.values()
            if e.workflow_key == workflow and (key is None or e.recorded_key in (None, key))
        ]
        if key is None:
            return self.runs_of(workflow) + lingering
        keys = [*self._by_group.get((workflow, key), ()), *self._by_group.get((workflow, None), ())]
        return [self.runs[k] for k in keys] + lingering

    def runs_waiting_for(self, workflow: Key) -> list[Key]:
        """Unstarted runs of a workflow: they wait for it to exist, become valid, or a slot."""
        return [entry.key for entry in self.runs_of(workflow) if not entry.started]

    def finished_runs_of(self, workflow: Key) -> list[FinishedRun]:
        return [self.finished[k] for k in self._finished_by_workflow.get(workflow, ())]

    # --- jobs ---------------------------------------------------------------------------
    def observe_job(self, body: dict[str, Any], deleted: bool = False) -> Key | None:
        if not deleted:
            self.rates.observe_job(body)  # whether or not its run is kept
        owner = wire.run_owner(body)
        attempt = attempt_of(body)
        if owner is None or attempt is None:
            return None
        uid, key = owner[1], (body["metadata"]["namespace"], owner[0])
        entry = self.runs.get(key)
        if (entry is None or entry.uid != uid) and uid not in self.lingering:
            # Finished (late events, or its Jobs listed at start-up), or of a run not seen
            # yet: a run's Jobs are only made after the run is known, and listed after it.
            return None
        if deleted:
            self.attempts.get(uid, {}).pop(attempt.job_name, None)
            self._settle(uid)
            return key
        known = self.attempts[uid].get(attempt.job_name)
        attempt = seen_lease(attempt, known, datetime.now(UTC))
        if known is not None and attempt.state is AttemptState.ACTIVE and not attempt.started:
            # Keep why its pod waits, and when that was read, until it is read again.
            attempt = dataclasses.replace(
                attempt, waiting=known.waiting, waiting_read_at=known.waiting_read_at
            )
        if known is not None and known.message and attempt.state is AttemptState.FAILED:
            # Keep what was read once: the pod's termination message and exit code.
            attempt = dataclasses.replace(
                attempt, message=known.message, permanent=known.permanent,
                cancelled=known.cancelled,
                timed_out=attempt.timed_out or known.timed_out,
            )  # fmt: skip
        succeeded = AttemptState.SUCCEEDED
        if known is not None and known.state is succeeded and attempt.state is not succeeded:
            # Its output came first: the step succeeded, whatever the Job says; the Job
            # only tells when the pod is gone (a failure after the output: the pod's own).
            if attempt.live:
                return key
            attempt = dataclasses.replace(known, pod_done=True)
        self._record(uid, known, attempt)
        self._settle(uid)
        return key

    def observe_output(self, meta: dict[str, Any]) -> Key | None:
        """A step's output ConfigMap appeared: its attempt succeeded, whatever its Job says.

        The pod writes it after the step's code returned, as its last act; only that pod
        may create it (the chart's admission policy). Outputs of Jobs the store does not
        know are left to their Jobs' conditions.
        """
        name = str(meta.get("name", ""))
        job = name.removesuffix("-output")
        owner = wire.run_owner({"metadata": meta})
        if owner is None or wire.output_configmap_name(job) != name:
            return None
        known = self.attempts.get(owner[1], {}).get(job)
        if known is not None:  # the head announces its parts (a large output's)
            self.output_parts[owner[1]][name] = outputs.parts_of(meta)
            if spawns.marked(meta):
                self.spawn_outputs[owner[1]].add(name)
        if known is None or known.state is AttemptState.SUCCEEDED:
            return None
        written = wire.parse_time(meta.get("creationTimestamp"))
        self._record(
            owner[1],
            known,
            dataclasses.replace(
                known, state=AttemptState.SUCCEEDED, started=True, terminating=False,
                finished_at=written or known.finished_at, message=None, timed_out=False,
                pod_done=False,
            ),
        )  # fmt: skip
        return (str(meta.get("namespace", "")), owner[0])

    def spawn_request(self, uid: str, configmap: str) -> bool | None:
        """Whether the output ``configmap`` of run ``uid`` is a spawn request, as its
        metadata said when the output watch saw it; None when it was not seen (written
        while the watch was down, say): only reading it tells."""
        if configmap in self.spawn_outputs.get(uid, ()):
            return True
        return False if configmap in self.output_parts.get(uid, {}) else None

    def _record(self, uid: str, known: Attempt | None, attempt: Attempt) -> None:
        if attempt.state is AttemptState.SUCCEEDED and (
            known is None or known.state is not AttemptState.SUCCEEDED
        ):
            self.succeeded_at[(uid, attempt.step)] = time.monotonic()
        self.attempts[uid][attempt.job_name] = attempt

    def note_created(self, entry: RunEntry, attempt: Attempt) -> None:
        """Record a Job this process just created, before its watch event arrives."""
        self.attempts[entry.uid].setdefault(attempt.job_name, attempt)

    # --- full listings ---------------------------------------------------------------------
    def settle_lingering(self) -> None:
        for uid in list(self.lingering):
            self._settle(uid)

    # --- workflows ----------------------------------------------------------------------
    def observe_workflow(self, body: dict[str, Any], deleted: bool = False) -> Key:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        current = self.workflows.get(key)
        if deleted:
            self.workflows.pop(key, None)
        elif current is None or not older(body, current.body):
            self.workflows[key] = WorkflowEntry.parse(body)
        if current is not None:
            _discard(self._sharing, current.scope(key), key)
        if not deleted and key in self.workflows:
            self._sharing[self.workflows[key].scope(key)][key] = None
        return key

    def scope(self, workflow: Key) -> Key:
        """Whose slots the workflow's runs take: its own, or a shared limit's."""
        entry = self.workflows.get(workflow)
        return entry.scope(workflow) if entry is not None else workflow

    def sharing(self, scope: Key) -> list[Key]:
        """The Workflows whose runs take the slots of ``scope`` (a workflow, or a shared
        limit named by several)."""
        if is_shared(scope):
            return list(self._sharing.get(scope, ()))
        return [scope]

    def workflow_watch_at(self, body: dict[str, Any]) -> None:
        """Record how far the Workflow watch has come (a watch event's object)."""
        self.workflows_version = max(self.workflows_version, resource_version(body) or 0)


def _finished(body: dict[str, Any]) -> bool:
    phase = wire.mapping(body.get("status")).get("phase")
    return isinstance(phase, str) and phase in FINISHED_PHASES


def _group(entry: RunEntry) -> tuple[Key, str | None]:
    return (entry.workflow_key, entry.recorded_key)


def _discard(index: dict[Any, dict[Key, None]], at: Any, key: Key) -> None:
    """Take ``key`` out of an index, and the index's entry with its last key."""
    keys = index.get(at)
    if keys is not None:
        keys.pop(key, None)
        if not keys:
            del index[at]
