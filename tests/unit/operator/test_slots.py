"""Waiting runs are woken through their key's admission: one pass per freed slot, not one
pass per waiting run (after a restart, the listing replays every queued run)."""

from __future__ import annotations

import asyncio
from typing import Any

from kubehatch_operator.admission import Admission
from kubehatch_operator.clock import now
from kubehatch_operator.entries import Key
from kubehatch_operator.reconciler import Reconciler
from kubehatch_operator.settings import ObservabilitySettings, Settings
from kubehatch_operator.store import Store
from tests.unit.operator.fakekube import FakeKube
from tests.unit.operator.test_large_inputs import run_body, workflow

QUEUE = {"expression": "input.user", "maxRuns": 1, "limitStrategy": "QueueNewest"}
SPEC = workflow()["spec"]


def running(key: str) -> dict[str, Any]:
    return {"phase": "Running", "concurrencyKey": key, "workflowSpec": SPEC}


def queued(key: str) -> dict[str, Any]:
    return {"phase": "Queued", "concurrencyKey": key, "observedGeneration": 1}


def body(name: str, user: str, status: dict[str, Any], at: int) -> dict[str, Any]:
    run = run_body(name, {"user": user}, status)
    run["metadata"]["creationTimestamp"] = f"2026-01-01T00:{at // 60:02d}:{at % 60:02d}Z"
    run["metadata"]["resourceVersion"] = str(100 + at)
    run["metadata"]["generation"] = 1
    return run


class Harness:
    """A reconciler whose run passes are recorded instead of run."""

    def __init__(self, concurrency: dict[str, Any] | None = QUEUE) -> None:
        self.store = Store()
        quiet = Settings(observability=ObservabilitySettings(post_events=False))
        self.reconciler = Reconciler(self.store, FakeKube(), quiet)  # type: ignore[arg-type]
        self.store.on_leave = self.reconciler.slots.run_left
        self.passes: list[str] = []
        self.reconciler.queue.kick = lambda key: self.passes.append(key[1])  # type: ignore[method-assign]
        self.store.observe_workflow(workflow(concurrency))

    def add(self, name: str, user: str, status: dict[str, Any], at: int) -> Key:
        return self.store.observe_run(body(name, user, status, at))

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)


def test_a_restart_gives_queued_runs_one_admission_pass_and_starts_none_while_slots_are_full() -> (
    None
):
    async def scenario() -> None:
        h = Harness()
        keys = [h.add("first", "ada", running("ada"), 0)]
        keys += [h.add(f"q{i:03d}", "ada", queued("ada"), i + 1) for i in range(300)]
        for key in keys:  # what the start-up listing does: every run is woken
            h.reconciler.wake(key)
        await h.settle()
        assert h.passes == ["first"]  # the running run's own pass only

    asyncio.run(scenario())


def test_a_freed_slot_kicks_exactly_the_oldest_run_of_its_key() -> None:
    async def scenario() -> None:
        h = Harness()
        h.add("first", "ada", running("ada"), 0)
        h.add("bob-1", "bob", running("bob"), 1)
        for i in reversed(range(50)):  # arrival order is by time, not by listing order
            h.add(f"q{i:03d}", "ada", queued("ada"), i + 2)
        h.add("bob-2", "bob", queued("bob"), 60)
        done = body("first", "ada", {**running("ada"), "phase": "Succeeded"}, 0)
        done["metadata"]["resourceVersion"] = "999"
        h.store.observe_run(done)
        await h.settle()
        assert h.passes == ["q000"]  # bob's queued run waits for bob's slot

    asyncio.run(scenario())


def test_the_run_a_freed_slot_went_to_starts_in_its_own_pass_without_a_second_weighing() -> None:
    async def scenario() -> None:
        h = Harness()
        h.add("first", "ada", running("ada"), 0)
        for i in range(3):
            h.add(f"q{i:03d}", "ada", queued("ada"), i + 1)
        finish(h, "first", "ada", 0)
        await h.settle()
        assert h.passes == ["q000"] and h.reconciler.slots.granted == {("ns", "q000")}

        def weighed(*_: object) -> None:
            raise AssertionError("the key's runs were weighed again")

        h.reconciler.slots.contending = weighed  # type: ignore[method-assign,assignment]
        kube = h.reconciler.kube
        kube.add_run(body("q000", "ada", queued("ada"), 1))  # type: ignore[attr-defined]
        await h.reconciler.reconcile(("ns", "q000"))
        assert kube.runs["q000"]["status"]["phase"] == "Running"  # type: ignore[attr-defined]
        assert h.reconciler.slots.granted == set()  # the slot is its own now

    asyncio.run(scenario())


def test_a_slot_handed_out_is_void_once_a_later_admission_cancels_its_run() -> None:
    """CancelInProgress: a newer run's admission cancels the run a freed slot went to,
    before that run's own pass: the pass must not start it on the old grant."""
    h = Harness({**QUEUE, "limitStrategy": "CancelInProgress"})
    slots = h.reconciler.slots
    spec = h.store.workflows[("ns", "wf")].spec
    assert spec is not None and spec.concurrency is not None
    slots.granted = {("ns", "x"), ("ns", "other")}
    slots.handed_out(("ns", "wf"), Admission(start=["y"], cancel=["x"]), spec.concurrency)
    assert slots.granted == {("ns", "other"), ("ns", "y")}


def test_a_total_limits_slots_are_the_workflows_whatever_the_key() -> None:
    async def scenario() -> None:
        h = Harness({**QUEUE, "limitStrategy": "GroupRoundRobin", "maxRunsTotal": 1})
        h.add("first", "ada", running("ada"), 0)
        h.add("bob-1", "bob", queued("bob"), 1)
        h.add("ada-2", "ada", queued("ada"), 2)
        done = body("first", "ada", {**running("ada"), "phase": "Failed"}, 0)
        done["metadata"]["resourceVersion"] = "999"
        h.store.observe_run(done)
        await h.settle()
        assert h.passes == ["bob-1"]

    asyncio.run(scenario())


def test_a_queued_run_with_something_new_in_its_spec_gets_its_own_pass() -> None:
    async def scenario() -> None:
        h = Harness()
        h.add("first", "ada", running("ada"), 0)
        cancelled = body("q", "ada", queued("ada"), 1)
        cancelled["spec"]["cancel"] = True
        cancelled["metadata"]["generation"] = 2
        h.reconciler.wake(h.store.observe_run(cancelled))
        await h.settle()
        assert h.passes == ["q"]

    asyncio.run(scenario())


def test_queued_runs_of_a_workflow_that_lost_its_limit_act_on_their_own() -> None:
    async def scenario() -> None:
        h = Harness()
        h.add("first", "ada", running("ada"), 0)
        h.add("q1", "ada", queued("ada"), 1)
        h.add("q2", "ada", queued("ada"), 2)
        h.store.observe_workflow(workflow(None))
        h.reconciler.wake(("ns", "q1"))
        await h.settle()
        assert sorted(h.passes) == ["q1", "q2"]

    asyncio.run(scenario())


def test_the_store_indexes_runs_by_key_and_finished_runs_by_workflow() -> None:
    store = Store()
    store.observe_run(body("a", "ada", running("ada"), 0))
    store.observe_run(body("b", "bob", queued("bob"), 1))
    store.observe_run(body("new", "ada", {}, 2))  # its key is not known yet
    names = lambda runs: sorted(e.key[1] for e in runs)  # noqa: E731
    assert names(store.contending(("ns", "wf"), "ada")) == ["a", "new"]
    assert names(store.contending(("ns", "wf"))) == ["a", "b", "new"]
    moved = body("new", "ada", queued("ada"), 2)
    moved["metadata"]["resourceVersion"] = "500"
    store.observe_run(moved)
    assert names(store.contending(("ns", "wf"), "bob")) == ["b"]
    done = body("a", "ada", {**running("ada"), "phase": "Succeeded"}, 0)
    done["metadata"]["resourceVersion"] = "501"
    store.observe_run(done)
    assert names(store.contending(("ns", "wf"), "ada")) == ["new"]
    assert [r.name for r in store.finished_runs_of(("ns", "wf"))] == ["a"]
    assert store.finished_runs_of(("ns", "other")) == []
    store.forget_run(("ns", "a"))
    assert store.finished_runs_of(("ns", "wf")) == []


def test_after_the_first_admission_events_of_queued_runs_cost_no_admission_pass() -> None:
    async def scenario() -> None:
        h = Harness()
        slots = h.reconciler.slots
        admissions: list[object] = []
        work = slots.queue.work

        async def counted(group: Any) -> float | None:
            admissions.append(group)
            return await work(group)

        slots.queue.work = counted
        h.add("first", "ada", running("ada"), 0)
        keys = [h.add(f"q{i}", "ada", queued("ada"), i + 1) for i in range(20)]
        for key in keys:
            h.reconciler.wake(key)  # the start-up listing
        await h.settle()
        for key in keys:
            h.reconciler.wake(key)  # kopf's replay of the same runs, echoes
        await h.settle()
        assert admissions == [(("ns", "wf"), "ada")]
        h.reconciler.wake(keys[0], workflow_changed=True)  # its spec changed: weigh again
        await h.settle()
        assert len(admissions) == 2 and h.passes == []  # and nobody may start yet

    asyncio.run(scenario())


def finish(h: Harness, name: str, user: str, at: int) -> None:
    done = body(name, user, {**running(user), "phase": "Succeeded"}, at)
    done["metadata"]["resourceVersion"] = str(1000 + at)
    h.store.observe_run(done)


def test_freed_slots_of_a_total_go_to_the_keys_in_turn_and_are_held_until_taken() -> None:
    async def scenario() -> None:
        h = Harness({**QUEUE, "limitStrategy": "GroupRoundRobin", "maxRunsTotal": 2})
        started = {"startedAt": "2026-01-01T00:00:00Z"}
        h.add("a1", "a", {**running("a"), **started}, 0)
        h.add("b1", "b", {**running("b"), "startedAt": "2026-01-01T00:00:01Z"}, 1)
        for i, (name, user) in enumerate([("a2", "a"), ("b2", "b"), ("c1", "c"), ("c2", "c")]):
            h.add(name, user, queued(user), 10 + i)
        finish(h, "a1", "a", 0)
        await h.settle()
        # After a restart the turn goes on after the key of the run started last (b).
        assert h.passes == ["c1"]
        slots = h.reconciler.slots
        assert slots.granted == {("ns", "c1")} and slots.served[("ns", "wf")] == "c"
        finish(h, "b1", "b", 1)  # c1 holds the other slot though its pass has not run yet
        await h.settle()
        assert h.passes == ["c1", "a2"]
        slots.taken(("ns", "c1"))
        assert slots.granted == {("ns", "a2")}

    asyncio.run(scenario())


def second_workflow(name: str, concurrency: dict[str, Any]) -> dict[str, Any]:
    other = workflow(concurrency)
    other["metadata"] = {**other["metadata"], "name": name, "uid": f"{name}-uid"}
    return other


def run_of(name: str, workflow_name: str, user: str, status: dict[str, Any], at: int) -> dict:
    run = body(name, user, status, at)
    run["spec"]["workflowRef"]["name"] = workflow_name
    return run


def test_a_shared_limit_counts_the_runs_of_every_workflow_naming_it() -> None:
    async def scenario() -> None:
        shared = {**QUEUE, "shared": "per-user"}
        h = Harness(shared)
        h.store.observe_workflow(second_workflow("wf2", shared))
        assert sorted(h.store.sharing(("ns", "@per-user"))) == [("ns", "wf"), ("ns", "wf2")]
        h.add("first", "ada", running("ada"), 0)  # of wf
        h.store.observe_run(run_of("other-1", "wf2", "ada", queued("ada"), 1))
        h.add("mine-2", "ada", queued("ada"), 2)
        finish(h, "first", "ada", 0)
        await h.settle()
        # wf's slot went to wf2's run, the oldest waiting run of the key across both.
        assert h.passes == ["other-1"]

    asyncio.run(scenario())


def test_workflows_that_disagree_on_a_shared_limit_start_nothing_and_say_why() -> None:
    async def scenario() -> None:
        h = Harness({**QUEUE, "shared": "per-user"})
        h.store.observe_workflow(
            second_workflow("wf2", {**QUEUE, "maxRuns": 3, "shared": "per-user"})
        )
        conflict = h.reconciler.slots.conflict(("ns", "@per-user"))
        assert conflict is not None
        assert "Workflows wf, wf2 share the concurrency limit 'per-user'" in conflict
        h.add("first", "ada", running("ada"), 0)
        h.store.observe_run(run_of("other-1", "wf2", "ada", queued("ada"), 1))
        finish(h, "first", "ada", 0)
        await h.settle()
        assert h.passes == []
        # A Workflow that leaves the shared limit takes its runs with it.
        h.store.observe_workflow(second_workflow("wf2", QUEUE))
        assert h.store.sharing(("ns", "@per-user")) == [("ns", "wf")]
        assert h.reconciler.slots.conflict(("ns", "@per-user")) is None

    asyncio.run(scenario())


def test_after_a_restart_the_group_admission_kicks_runs_past_their_queue_timeout() -> None:
    async def scenario() -> None:
        h = Harness({**QUEUE, "queueTimeout": "1m"})
        keys = [h.add("first", "ada", running("ada"), 0)]
        keys += [h.add(f"q{i}", "ada", queued("ada"), i + 1) for i in range(3)]
        fresh = body("fresh", "ada", queued("ada"), 10)
        fresh["metadata"]["creationTimestamp"] = now().isoformat()  # created just now
        keys.append(h.store.observe_run(fresh))
        for key in keys:  # the start-up listing wakes every run
            h.reconciler.wake(key)
        await h.settle()
        # The slot stays taken; the runs created long ago have waited past their timeout
        # and get a pass of their own (which cancels them), the fresh one does not.
        assert sorted(h.passes) == ["first", "q0", "q1", "q2"]
        assert h.reconciler.slots.queue._timers  # the fresh one's deadline is scheduled

    asyncio.run(scenario())


def test_a_shared_limit_never_computes_a_run_key_with_another_workflows_expression() -> None:
    async def scenario() -> None:
        by_user = {"expression": "input.user", "maxRuns": 1, "limitStrategy": "QueueNewest",
                   "maxRunsTotal": 3, "shared": "s"}  # fmt: skip
        h = Harness(by_user)
        h.store.observe_workflow(second_workflow("wf2", {**by_user, "expression": "input.tenant"}))
        running_b0 = run_of("b0", "wf2", "x", running("t1"), 0)
        h.store.observe_run(running_b0)
        fresh = run_of("b1", "wf2", "u9", {}, 1)  # no key recorded yet: input.tenant is t1
        fresh["spec"]["input"]["tenant"] = "t1"
        h.store.observe_run(fresh)
        h.add("a0", "ada", running("ada"), 2)
        finish(h, "a0", "ada", 2)
        await h.settle()
        # wf's admission does not read b1's key as input.user ("u9") and hand it a slot;
        # b1 finds its key (t1, where b0 runs) on its own pass.
        assert "b1" not in h.passes and h.reconciler.slots.granted == set()

    asyncio.run(scenario())


def test_a_workflow_change_voids_the_slots_handed_out_under_its_old_limit() -> None:
    async def scenario() -> None:
        h = Harness({**QUEUE, "limitStrategy": "GroupRoundRobin", "maxRunsTotal": 2})
        h.add("a1", "a", running("a"), 0)
        h.add("b1", "b", queued("b"), 1)
        h.reconciler.wake(("ns", "b1"))
        await h.settle()
        assert h.reconciler.slots.granted == {("ns", "b1")}
        h.reconciler.slots.workflow_changed(("ns", "wf"))
        assert h.reconciler.slots.granted == set()

    asyncio.run(scenario())
