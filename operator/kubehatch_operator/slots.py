"""Concurrency slots: which waiting runs a freed slot lets start, without waking the rest.

A run that waits for a slot (phase Queued, its key recorded) needs no pass of its own
until its key's admission says it may start or must be cancelled. Admission of its
(scope, key) group runs when a slot frees, when the Workflow's spec changes, and once
after start-up (slots may have freed while the operator was down); it weighs the
group's runs and kicks only those whose verdict changed. Thousands of queued runs then
cost one pass per freed slot, not one pass each, and replaying them after a restart
costs nothing.

A scope is a workflow, or a limit several Workflows share by name (`concurrency.shared`):
then the runs of all of them count together, under the limit they must all declare.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kubehatch.api.workflow import ConcurrencySpec, LimitStrategy, WorkflowSpec
from kubehatch_operator import gates
from kubehatch_operator.admission import Admission
from kubehatch_operator.clock import now
from kubehatch_operator.entries import Key, RunEntry
from kubehatch_operator.metrics import admission_cpu
from kubehatch_operator.model import Gate, Verdict
from kubehatch_operator.reading import Pass
from kubehatch_operator.store import Store
from kubehatch_operator.workqueue import KeyedQueue

Group = tuple[Key, str | None]
"""(scope, concurrency key) whose slots are shared; the key is None when the limit has
maxRunsTotal, whose slots every key shares."""


class Slots:
    def __init__(self, store: Store, kick: Callable[[Key], None]) -> None:
        self.store = store
        self.kick = kick
        """Give one run a pass of its own."""
        self.queue: KeyedQueue[Group] = KeyedQueue(
            "admitting the waiting runs of", self._admit_waiting
        )
        self._locks: dict[Key, asyncio.Lock] = {}
        self._admitted: set[Group] = set()
        """Groups whose admission ran since start-up: from then on only a run leaving, a
        run arriving (its own pass) or its Workflow's spec changes who may start."""
        self.served: dict[Key, str] = {}
        """Per scope with maxRunsTotal, the key that took the last slot: round robin
        goes on after it (after a restart, after the key of the run started last)."""
        self.granted: set[Key] = set()
        """Runs an admission handed a slot, whose own pass has not started them yet: they
        hold the slot meanwhile, so that every pass in between sees the same turns (with
        maxRunsTotal, a pass of its own would hand the slot on otherwise), and their own
        pass starts them without weighing the key's runs a second time."""

    def lock(self, scope: Key) -> asyncio.Lock:
        """Admission of a scope runs one at a time: two runs never take the last slot."""
        return self._locks.setdefault(scope, asyncio.Lock())

    def scope(self, workflow: Key) -> Key:
        return self.store.scope(workflow)

    def conflict(self, scope: Key) -> str | None:
        """Why the Workflows sharing a limit cannot be admitted together, or None."""
        members = self.store.sharing(scope)
        if len(members) < 2:
            return None
        policies: dict[tuple[object, ...], list[str]] = {}
        for workflow in members:
            entry = self.store.workflows.get(workflow)
            concurrency = entry.spec.concurrency if entry and entry.spec else None
            if concurrency is not None:
                policies.setdefault(concurrency.policy, []).append(workflow[1])
        if len(policies) < 2:
            return None
        names = ", ".join(sorted(n for names in policies.values() for n in names))
        return (
            f"Workflows {names} share the concurrency limit {scope[1][1:]!r} with different "
            "settings; make maxRuns, maxRunsExpression, maxRunsTotal, limitStrategy and "
            "queueTimeout the same on each (runs wait until then)"
        )

    def wake(self, key: Key, *, workflow_changed: bool = False) -> bool:
        """Route a wake-up of run ``key`` to its group's admission when all the run waits
        for is a slot; False when the run needs a pass of its own."""
        entry = self.store.runs.get(key)
        if entry is None or entry.queued_on is None:
            return False
        group = self._group(entry.workflow_key, entry.queued_on)
        if workflow_changed or group not in self._admitted:
            self.queue.kick(group)
        return True

    def run_left(self, entry: RunEntry) -> None:
        """A run finished or went: its slot may let waiting runs of its group start (a
        burst of finished runs folds into one admission pass per group)."""
        self.granted.discard(entry.key)
        self.queue.kick(self._group(entry.workflow_key, entry.recorded_key))

    def contending(
        self, entry: RunEntry, concurrency: ConcurrencySpec
    ) -> tuple[list[RunEntry], set[Key]]:
        """The runs a run's admission weighs (its key's, when its key is recorded and keys
        do not share slots; of every Workflow sharing its limit), and those of them that
        hold a slot whatever their status."""
        key = entry.recorded_key if concurrency.per_key else None
        runs = self._runs(self.scope(entry.workflow_key), key)
        return runs, self._holding(runs)

    def handed_out(
        self,
        scope: Key,
        admission: Admission,
        concurrency: ConcurrencySpec,
        own: Key | None = None,
    ) -> None:
        """Remember the slots an admission handed out (see `granted`); a run it cancels or
        queues holds none any more."""
        self.granted.difference_update((scope[0], n) for n in (*admission.cancel, *admission.queue))
        self.granted.update((scope[0], name) for name in admission.start if (scope[0], name) != own)
        if not concurrency.per_key and admission.served is not None:
            self.served[scope] = admission.served

    def admit(self, read: Pass, spec: WorkflowSpec, scope: Key) -> tuple[Gate, Admission]:
        """The verdict on a run that has not started, from its own pass (under the lock of
        its ``scope``), and the admission it came from."""
        assert spec.concurrency is not None
        if read.key in self.granted and self.conflict(scope) is None:
            # Handed a slot by its key's admission: it starts, nothing to weigh again.
            return gates.gate(read.key[1], [read.entry], spec, now(), {read.key}, read.run)
        runs, holding = self.contending(read.entry, spec.concurrency)
        gate, admission = gates.gate(
            read.key[1], runs, spec, now(), holding, read.run, self.served.get(scope)
        )
        conflict = self.conflict(scope)
        if conflict is not None and gate.verdict is not Verdict.FAIL:
            gate = Gate(Verdict.QUEUE, gate.key, conflict, gate.limit, "SharedLimitConflict")
            admission = Admission()
        self.handed_out(scope, admission, spec.concurrency, read.key)
        return gate, admission

    def workflow_changed(self, workflow: Key) -> None:
        """Slots handed out under the Workflow's old limit are void: the next admission
        hands them out again under the new one."""
        if not self.granted:
            return
        scope = self.scope(workflow)
        runs = self.store.runs
        self.granted = {
            key
            for key in self.granted
            if key not in runs or self.scope(runs[key].workflow_key) != scope
        }

    def taken(self, run: Key) -> None:
        """The run's pass wrote its verdict: a slot it was handed is its own (or void)."""
        self.granted.discard(run)

    def superseded(self, read: Pass, spec: WorkflowSpec) -> Gate | None:
        """A cancel verdict for a started run that newer runs of its key pushed out.

        Recomputed from the store on every pass of the run itself, never handed over
        from another run's pass, so that a restart in between still cancels it.
        """
        assert spec.concurrency is not None
        if spec.concurrency.limit_strategy is not LimitStrategy.CANCEL_IN_PROGRESS:
            return None
        runs, holding = self.contending(read.entry, spec.concurrency)
        gate, _ = gates.gate(read.key[1], runs, spec, now(), holding)
        if gate.verdict is not Verdict.CANCEL:
            return None
        strategy = spec.concurrency.limit_strategy.value
        message = f"cancelled by the concurrency limit ({strategy}): a newer run took its slot"
        return Gate(Verdict.CANCEL, gate.key, message)

    def _group(self, workflow: Key, key: str | None) -> Group:
        entry = self.store.workflows.get(workflow)
        concurrency = entry.spec.concurrency if entry and entry.spec else None
        scope = self.scope(workflow)
        if concurrency is not None and not concurrency.per_key:
            return (scope, None)
        return (scope, key)

    def _runs(self, scope: Key, key: str | None) -> list[RunEntry]:
        members = self.store.sharing(scope)
        if len(members) == 1:
            return self.store.contending(members[0], key)
        return [run for workflow in members for run in self.store.contending(workflow, key)]

    def _holding(self, runs: list[RunEntry]) -> set[Key]:
        """The runs with step Jobs still running: few (the started ones, and those whose
        status write a crash lost), so found from the Jobs' side; and those handed a slot
        not taken yet."""
        store = self.store
        live = {uid for uid in store.attempts if store.live_uid(uid)}
        holding = {entry.key for entry in runs if entry.uid in live} if live else set()
        if self.granted:
            holding.update(entry.key for entry in runs if entry.key in self.granted)
        return holding

    async def _admit_waiting(self, group: Group) -> float | None:
        self._admitted.add(group)
        scope, key = group
        members = self.store.sharing(scope)
        entry = self.store.workflows.get(members[0]) if members else None
        spec = entry.spec if entry is not None else None
        if spec is None or spec.concurrency is None:
            # No limit (any more), or no valid Workflow: its queued runs act on their own.
            for run in self._runs(scope, key):
                if run.queued_on is not None:
                    self.kick(run.key)
            return None
        if self.conflict(scope) is not None:
            return None  # each run's own pass says why it waits
        async with self.lock(scope):
            with admission_cpu("slot"):
                runs = self._runs(scope, key)
                holding = self._holding(runs)
                admission = gates.workflow_admission(
                    runs, spec, now(), holding, key, self.served.get(scope)
                )
                self.handed_out(scope, admission, spec.concurrency)
        for name in {*admission.start, *admission.cancel}:
            self.kick((scope[0], name))
        return self._timeouts(runs, spec.concurrency)

    def _timeouts(self, runs: list[RunEntry], concurrency: ConcurrencySpec) -> float | None:
        """Kick the queued runs past their queueTimeout (each cancels itself in its own
        pass); the seconds until the next one is due. Their own timers die with the
        process: this rebuilds them, as every group is admitted once after start-up."""
        timeout = concurrency.queue_timeout_delta
        if timeout is None:
            return None
        current = now()
        upcoming: list[float] = []
        for run in runs:
            if run.queued_on is None:
                continue
            left = (run.queued_since + timeout - current).total_seconds()
            if left <= 0:
                self.kick(run.key)
            else:
                upcoming.append(left)
        return min(upcoming) + 0.05 if upcoming else None
