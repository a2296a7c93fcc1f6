"""Concurrency slots: which waiting runs a freed slot lets start, without waking the rest.

A run that waits for a slot (phase Queued, its key recorded) needs no pass of its own
until its key's admission says it may start or must be cancelled. Admission of its
(workflow, key) group runs when a slot frees, when the Workflow's spec changes, and once
after start-up (slots may have freed while the operator was down); it weighs the
group's runs and kicks only those whose verdict changed. Thousands of queued runs then
cost one pass per freed slot, not one pass each, and replaying them after a restart
costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kubehatch.api.workflow import ConcurrencySpec, LimitStrategy, WorkflowSpec
from kubehatch_operator import gates
from kubehatch_operator.clock import now
from kubehatch_operator.entries import Key, RunEntry
from kubehatch_operator.metrics import admission_cpu
from kubehatch_operator.model import Gate, Verdict
from kubehatch_operator.reading import Pass
from kubehatch_operator.store import Store
from kubehatch_operator.workqueue import KeyedQueue

Group = tuple[Key, str | None]
"""(workflow, concurrency key) whose slots are shared; the key is None with
GroupRoundRobin, where the workflow's slots go to every key in turn."""


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

    def lock(self, workflow: Key) -> asyncio.Lock:
        """Admission of a workflow runs one at a time: two runs never take the last slot."""
        return self._locks.setdefault(workflow, asyncio.Lock())

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
        self.queue.kick(self._group(entry.workflow_key, entry.recorded_key))

    def contending(
        self, entry: RunEntry, concurrency: ConcurrencySpec
    ) -> tuple[list[RunEntry], set[Key]]:
        """The runs a run's admission weighs (its key's, when its key is recorded and keys
        do not share slots), and those of them whose Jobs still run."""
        per_key = concurrency.limit_strategy is not LimitStrategy.GROUP_ROUND_ROBIN
        runs = self.store.contending(entry.workflow_key, entry.recorded_key if per_key else None)
        return runs, self._holding(runs)

    def superseded(self, read: Pass, spec: WorkflowSpec) -> Gate | None:
        """A cancel verdict for a started run that newer runs of its key pushed out.

        Recomputed from the store on every pass of the run itself, never handed over
        from another run's pass, so that a restart in between still cancels it.
        """
        assert spec.concurrency is not None
        if spec.concurrency.limit_strategy is not LimitStrategy.CANCEL_IN_PROGRESS:
            return None
        runs, holding = self.contending(read.entry, spec.concurrency)
        gate, _ = gates.gate(read.key[1], runs, spec.concurrency, now(), holding)
        if gate.verdict is not Verdict.CANCEL:
            return None
        strategy = spec.concurrency.limit_strategy.value
        message = f"cancelled by the concurrency limit ({strategy}): a newer run took its slot"
        return Gate(Verdict.CANCEL, gate.key, message)

    def _group(self, workflow: Key, key: str | None) -> Group:
        entry = self.store.workflows.get(workflow)
        concurrency = entry.spec.concurrency if entry and entry.spec else None
        if concurrency and concurrency.limit_strategy is LimitStrategy.GROUP_ROUND_ROBIN:
            return (workflow, None)
        return (workflow, key)

    def _holding(self, runs: list[RunEntry]) -> set[Key]:
        """The runs with step Jobs still running: few (the started ones, and those whose
        status write a crash lost), so found from the Jobs' side."""
        store = self.store
        live = {uid for uid in store.attempts if store.live_uid(uid)}
        return {entry.key for entry in runs if entry.uid in live} if live else set()

    async def _admit_waiting(self, group: Group) -> None:
        self._admitted.add(group)
        workflow, key = group
        entry = self.store.workflows.get(workflow)
        concurrency = entry.spec.concurrency if entry and entry.spec else None
        if concurrency is None:
            # No limit (any more), or no valid Workflow: its queued runs act on their own.
            for run in self.store.contending(workflow, key):
                if run.queued_on is not None:
                    self.kick(run.key)
            return None
        async with self.lock(workflow):
            with admission_cpu("slot"):
                runs = self.store.contending(workflow, key)
                holding = self._holding(runs)
                admission = gates.workflow_admission(runs, concurrency, now(), holding, key)
        for name in {*admission.start, *admission.cancel}:
            self.kick((workflow[0], name))
        return None
