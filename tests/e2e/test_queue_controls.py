"""Queue controls on a real cluster: Hatchet's concurrency examples, ported.

Each test starts runs of one of the workflows of tests/e2e/workers/queues.py, whose step
sleeps ``input.sleep`` seconds and records when it started and ended; the tests check
the runs' outcomes (phase, condition reason) and lay the steps out in time: which runs
overlapped, which waited, and in what order they were handed their slots.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client

from kubehatch import workflow_manifests
from kubehatch.api.wire import ANNOTATION_RATE_LIMITS as RATE_LIMITS
from kubehatch.client import Client
from tests.e2e import kube
from tests.e2e.support import wait_for
from tests.e2e.workers import queues

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

MANIFESTS = {m["metadata"]["name"]: m for m in workflow_manifests(queues.worker)}
FINAL = {"Succeeded", "Failed", "Cancelled", "TimedOut"}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Outcome:
    """A finished run as the cluster tells it: its status, and its step's own timing."""

    name: str
    status: dict[str, Any]
    output: dict[str, Any] | None

    @property
    def phase(self) -> str:
        return str(self.status.get("phase"))

    @property
    def condition(self) -> dict[str, Any]:
        conditions = self.status.get("conditions") or []
        return next((c for c in conditions if c["type"] == "Succeeded"), {})

    @property
    def reason(self) -> str | None:
        return self.condition.get("reason")

    @property
    def started_at(self) -> datetime:
        """When the operator handed the run its slot (status.startedAt)."""
        return _time(self.status["startedAt"])

    @property
    def start(self) -> float:
        """When the step began its work, by the pod's clock (the node's)."""
        assert self.output is not None, f"{self.name} has no output: {self.brief()}"
        return float(self.output["start"])

    @property
    def end(self) -> float:
        assert self.output is not None, f"{self.name} has no output: {self.brief()}"
        return float(self.output["end"])

    def overlaps(self, other: Outcome) -> bool:
        return self.start < other.end and other.start < self.end

    def brief(self) -> str:
        fields = ("phase", "startedAt", "finishedAt", "concurrencyKey", "concurrencyLimit")
        shown = {f: self.status.get(f) for f in fields if f in self.status}
        shown["condition"] = (self.reason, self.condition.get("message"))
        return f"{self.name}: {shown}"


class Runs:
    """Creates runs of the queue workflows in one namespace and collects how they ended."""

    def __init__(self, namespace: str, image: str) -> None:
        self.namespace = namespace
        self.image = image
        self.applied: set[str] = set()

    def apply(self, *workflows: str) -> None:
        for workflow in workflows:
            if workflow in self.applied:
                continue
            manifest = MANIFESTS[workflow]
            manifest = {**manifest, "spec": {**manifest["spec"], "worker": queues.WORKER_REF}}
            kube.apply_workflow(self.namespace, manifest, self.image)
            self.applied.add(workflow)

    def create(
        self,
        name: str,
        workflow: str,
        input: dict[str, Any],
        priority: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        self.apply(workflow)
        spec: dict[str, Any] = {"workflowRef": {"name": workflow}, "input": input}
        if priority is not None:
            spec["priority"] = priority
        if metadata is not None:
            spec["additionalMetadata"] = metadata
        body = {
            "apiVersion": f"{kube.GROUP}/{kube.VERSION}",
            "kind": "WorkflowRun",
            "metadata": {"name": name},
            "spec": spec,
        }
        client.CustomObjectsApi().create_namespaced_custom_object(
            kube.GROUP, kube.VERSION, self.namespace, "workflowruns", body
        )
        return name

    def status(self, name: str) -> dict[str, Any]:
        status = kube.get_run(self.namespace, name).get("status") or {}
        status.pop("workflowSpec", None)
        return status

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def wait_phase(self, name: str, phases: set[str], timeout: float = 120) -> dict[str, Any]:
        return kube.wait_for_phase(self.namespace, name, phases, timeout)

    def wait_running(self, name: str, timeout: float = 120) -> None:
        """The run started and its step's pod is running (its work has begun)."""
        self.wait_phase(name, {"Running"}, timeout)
        core = client.CoreV1Api()
        wait_for(
            lambda: any(
                p.status.phase == "Running"
                for p in core.list_namespaced_pod(
                    self.namespace, label_selector=f"kubehatch.dev/run={name}"
                ).items
            ),
            timeout,
            f"the step pod of {name} to run",
        )

    def outcome(self, name: str, timeout: float = 180) -> Outcome:
        status = kube.wait_for_phase(self.namespace, name, FINAL, timeout)["status"]
        status.pop("workflowSpec", None)
        step = (status.get("steps") or {}).get("work") or {}
        output = None
        if step.get("outputConfigMap"):
            output = kube.output(self.namespace, step["outputConfigMap"])
        return Outcome(name, status, output)

    def outcomes(self, names: Iterable[str], timeout: float = 180) -> dict[str, Outcome]:
        return {name: self.outcome(name, timeout) for name in names}

    def jobs(self, name: str) -> list[client.V1Job]:
        return kube.jobs_of(self.namespace, name)


@pytest.fixture
def runs(op_namespace: str, step_image: str) -> Runs:
    return Runs(op_namespace, step_image)


def _report(outcomes: Iterable[Outcome]) -> str:
    return "\n".join(o.brief() for o in outcomes)


def _max_overlap(outcomes: Iterable[Outcome]) -> int:
    """The most steps that were doing their work at the same moment (by their own clocks)."""
    edges = sorted(
        itertools.chain.from_iterable(((o.start, 1), (o.end, -1)) for o in outcomes),
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same instant
    )
    most = current = 0
    for _, change in edges:
        current += change
        most = max(most, current)
    return most


def _assert_cancelled_by_limit(outcome: Outcome, reason: str = "ConcurrencyLimit") -> None:
    assert outcome.phase == "Cancelled", outcome.brief()
    assert (outcome.condition.get("status"), outcome.reason) == ("False", reason), outcome.brief()


# --- 1. CancelInProgress ------------------------------------------------------------------
def test_cancel_in_progress_keeps_only_the_newest_run(runs: Runs) -> None:
    """Hatchet's example: ten runs of one key a second apart; each new run cancels the one
    in progress, so only the last one finishes its work."""
    runs.apply("q-cancel-in-progress")
    names = [f"cip-{i}" for i in range(10)]
    for name in names:
        runs.create(name, "q-cancel-in-progress", {"group": "g", "sleep": 4})
        time.sleep(1)
    outcomes = runs.outcomes(names)
    report = _report(outcomes.values())
    last = outcomes[names[-1]]
    verdicts = {n: (o.phase, o.reason) for n, o in outcomes.items()}
    expected = {n: ("Cancelled", "ConcurrencyLimit") for n in names[:-1]}
    assert verdicts == {**expected, names[-1]: ("Succeeded", "Succeeded")}, report
    assert last.output is not None and last.output["run"] == names[-1]
    for name in names[:-1]:
        _assert_cancelled_by_limit(outcomes[name])
        assert "CancelInProgress" in outcomes[name].condition["message"], report
    # Every run was started in its turn (and cancelled by the next): its key was recorded.
    assert {o.status.get("concurrencyKey") for o in outcomes.values()} == {"g"}, report


# --- 2. CancelNewest ----------------------------------------------------------------------
def test_cancel_newest_keeps_the_running_run(runs: Runs) -> None:
    """One run works; ten more of its key arrive meanwhile and are cancelled at once."""
    runs.create("cn-first", "q-cancel-newest", {"group": "g", "sleep": 8})
    runs.wait_running("cn-first")
    newer = [runs.create(f"cn-{i}", "q-cancel-newest", {"group": "g"}) for i in range(10)]
    for name in newer:
        runs.wait_phase(name, {"Cancelled"}, timeout=30)
    # All ten were turned away while the first was still at work.
    assert runs.phase("cn-first") == "Running", runs.status("cn-first")
    outcomes = runs.outcomes(["cn-first", *newer])
    report = _report(outcomes.values())
    assert outcomes["cn-first"].phase == "Succeeded", report
    for name in newer:
        _assert_cancelled_by_limit(outcomes[name])
        assert "CancelNewest" in outcomes[name].condition["message"], report
        assert not runs.jobs(name), f"{name} was cancelled but ran a Job"
        assert outcomes[name].output is None


# --- 3. GroupRoundRobin, one run per key ------------------------------------------------
def test_round_robin_runs_keys_side_by_side_one_run_per_key(runs: Runs) -> None:
    names = {key: [f"rr-{key.lower()}{i}" for i in range(3)] for key in ("A", "B")}
    for key, keyed in names.items():
        for name in keyed:
            runs.create(name, "q-round-robin", {"group": key, "sleep": 3})
    outcomes = runs.outcomes(itertools.chain.from_iterable(names.values()))
    report = _report(outcomes.values())
    assert {o.phase for o in outcomes.values()} == {"Succeeded"}, report
    for keyed in names.values():
        # One at a time per key, in arrival order: each ends before the next begins.
        for before, after in itertools.pairwise(outcomes[n] for n in keyed):
            assert before.end <= after.start, f"{before.name} overlaps {after.name}\n{report}"
            assert before.started_at <= after.started_at, report
    # The two keys did not wait for each other.
    a_runs = [outcomes[n] for n in names["A"]]
    b_runs = [outcomes[n] for n in names["B"]]
    assert any(a.overlaps(b) for a in a_runs for b in b_runs), report
    assert _max_overlap(outcomes.values()) == 2, report


# --- 4. GroupRoundRobin with maxRunsTotal ---------------------------------------------------
def _slot_order(outcomes: list[Outcome], tie: float) -> list[list[Outcome]]:
    """The runs in the order they were handed their slots (status.startedAt), runs started
    within ``tie`` seconds of the previous one grouped: those may have been handed their
    slots by one admission, whose starts are then written in any order."""
    ordered = sorted(outcomes, key=lambda o: (o.started_at, o.start))
    groups: list[list[Outcome]] = []
    for outcome in ordered:
        if groups and (outcome.started_at - groups[-1][-1].started_at).total_seconds() < tie:
            groups[-1].append(outcome)
        else:
            groups.append([outcome])
    return groups


def test_round_robin_with_a_total_hands_slots_to_the_keys_in_turn(runs: Runs) -> None:
    """maxRunsTotal 2 across three keys: the free slots go to A, B, C, A, B, C, ...

    Two runs of a key Z hold both slots first, so that all fifteen runs are queued before
    any slot frees (otherwise A's first runs would take the slots before B's exist); Z
    was served last, so the turn goes on with A.
    """
    workflow = "q-round-robin-total"
    holders = [runs.create(f"rt-z{i}", workflow, {"group": "Z", "sleep": 10}) for i in range(2)]
    for name in holders:
        runs.wait_running(name)
    keys = ("A", "B", "C")
    names = {key: [f"rt-{key.lower()}{i}" for i in range(5)] for key in keys}
    for key in keys:
        for name in names[key]:
            runs.create(name, workflow, {"group": key, "sleep": 2})
    queued = list(itertools.chain.from_iterable(names.values()))
    for name in queued:
        runs.wait_phase(name, {"Queued"}, timeout=30)
    assert {runs.phase(h) for h in holders} == {"Running"}, "the holders ended too soon"
    outcomes = runs.outcomes([*holders, *queued], timeout=300)
    report = _report(sorted(outcomes.values(), key=lambda o: o.status.get("startedAt", "")))
    assert {o.phase for o in outcomes.values()} == {"Succeeded"}, report
    assert _max_overlap(outcomes.values()) == 2, report

    served = [outcomes[n] for n in queued]
    expected = [keys[i % 3] for i in range(len(served))]  # A, B, C, A, B, C, ...
    position = 0
    for group in _slot_order(served, tie=1.0):
        got = sorted(o.status["concurrencyKey"] for o in group)
        want = sorted(expected[position : position + len(group)])
        order = [(o.name, o.status["startedAt"]) for o in group]
        assert got == want, f"slots {position + 1}-{position + len(group)}: {order}\n{report}"
        position += len(group)
    # Within a key, arrival order.
    for keyed in names.values():
        starts = [outcomes[n].start for n in keyed]
        assert starts == sorted(starts), report


# --- 5. A dynamic limit ---------------------------------------------------------------------
def test_dynamic_limit_lets_premium_users_run_two_at_once(runs: Runs) -> None:
    workflow = "q-dynamic"
    premium = [runs.create(f"dyn-pat{i}", workflow, _user("pat", "premium")) for i in range(2)]
    basic = [runs.create(f"dyn-bob{i}", workflow, _user("bob", "basic")) for i in range(2)]
    # bob's second run waits for his first.
    queued = runs.wait_phase(basic[1], {"Queued", *FINAL}, timeout=60)["status"]
    assert queued["phase"] == "Queued", queued
    assert "1 run(s) per key" in _condition(queued)["message"]
    outcomes = runs.outcomes([*premium, *basic])
    report = _report(outcomes.values())
    assert {o.phase for o in outcomes.values()} == {"Succeeded"}, report
    assert outcomes[premium[0]].overlaps(outcomes[premium[1]]), report
    assert not outcomes[basic[0]].overlaps(outcomes[basic[1]]), report
    assert outcomes[basic[0]].end <= outcomes[basic[1]].start, report
    assert {outcomes[n].status.get("concurrencyLimit") for n in premium} == {2}, report
    assert {outcomes[n].status.get("concurrencyLimit") for n in basic} == {1}, report
    assert {outcomes[n].status.get("concurrencyKey") for n in premium} == {"pat"}, report


def _user(user: str, tier: str) -> dict[str, Any]:
    return {"user": user, "tier": tier, "group": user, "sleep": 5}


def _condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == "Succeeded")


# --- 6. Debounce ----------------------------------------------------------------------------
def test_debounce_keeps_the_newest_or_the_oldest_waiting_run(runs: Runs) -> None:
    """One run works while four more of its key arrive: CancelQueuedExceptNewest keeps the
    last of them (it runs after the first), CancelQueuedExceptOldest the first of them."""
    flavours = {"new": "q-debounce-newest", "old": "q-debounce-oldest"}
    names = {f: [f"db{f}-{i}" for i in range(1, 6)] for f in flavours}
    for flavour, workflow in flavours.items():
        runs.create(names[flavour][0], workflow, {"group": "g", "sleep": 7})
    for flavour in flavours:
        runs.wait_running(names[flavour][0])
    for later in zip(*(names[f][1:] for f in flavours), strict=True):
        for flavour, name in zip(flavours, later, strict=True):
            runs.create(name, flavours[flavour], {"group": "g", "sleep": 2})
        time.sleep(0.5)
    still = {f: runs.phase(names[f][0]) for f in flavours}
    assert set(still.values()) == {"Running"}, f"the first runs ended too soon: {still}"
    outcomes = runs.outcomes(itertools.chain.from_iterable(names.values()))
    report = _report(outcomes.values())

    first, *middle, last = (outcomes[n] for n in names["new"])
    assert (first.phase, last.phase) == ("Succeeded", "Succeeded"), report
    assert first.end <= last.start, report
    for outcome in middle:
        _assert_cancelled_by_limit(outcome)
        assert "only the newest queued run is kept" in outcome.condition["message"], report
        assert not runs.jobs(outcome.name), f"{outcome.name} was cancelled but ran a Job"

    first, second, *rest = (outcomes[n] for n in names["old"])
    assert (first.phase, second.phase) == ("Succeeded", "Succeeded"), report
    assert first.end <= second.start, report
    for outcome in rest:
        _assert_cancelled_by_limit(outcome)
        assert "only the oldest queued run is kept" in outcome.condition["message"], report
        assert not runs.jobs(outcome.name), f"{outcome.name} was cancelled but ran a Job"


# --- 7. Priority ----------------------------------------------------------------------------
def test_queued_runs_start_by_priority_then_arrival(runs: Runs) -> None:
    """Behind a running run: priorities 1, 1 (the workflow's default), 3, 2 queue, in that
    order of creation; they start 3, 2, then the two 1s in creation order."""
    workflow = "q-priority"
    runs.create("prio-holder", workflow, {"group": "g", "sleep": 6})
    runs.wait_running("prio-holder")
    queued = [
        runs.create("prio-low-a", workflow, {"group": "g", "sleep": 1}, priority=1),
        runs.create("prio-low-b", workflow, {"group": "g", "sleep": 1}),  # defaultPriority
        runs.create("prio-high", workflow, {"group": "g", "sleep": 1}, priority=3),
        runs.create("prio-mid", workflow, {"group": "g", "sleep": 1}, priority=2),
    ]
    for name in queued:
        runs.wait_phase(name, {"Queued"}, timeout=30)
    assert runs.phase("prio-holder") == "Running", "the holder ended too soon"
    outcomes = runs.outcomes(["prio-holder", *queued])
    report = _report(outcomes.values())
    assert {o.phase for o in outcomes.values()} == {"Succeeded"}, report
    by_start = sorted(outcomes.values(), key=lambda o: o.start)
    assert [o.name for o in by_start] == [
        "prio-holder", "prio-high", "prio-mid", "prio-low-a", "prio-low-b"
    ], report  # fmt: skip
    # One at a time, and the operator handed out the slots in the same order.
    for before, after in itertools.pairwise(by_start):
        assert before.end <= after.start, report
        assert before.started_at <= after.started_at, report


# --- 8. Why a run waits, and the queue timeout --------------------------------------------
def test_queued_run_says_why_and_is_cancelled_after_the_queue_timeout(runs: Runs) -> None:
    """Behind a long run, two runs wait: their condition names the key, their place and
    the holder; past queueTimeout (15s) they are cancelled. A run of another key that
    gets its slot in time is not."""
    workflow = "q-queue-timeout"
    runs.create("qt-holder", workflow, {"group": "g", "sleep": 120})
    runs.create("qt-short", workflow, {"group": "k", "sleep": 8})
    runs.wait_running("qt-holder")
    runs.wait_phase("qt-short", {"Running"})
    runs.create("qt-wait-1", workflow, {"group": "g"})
    first = runs.wait_phase("qt-wait-1", {"Queued", *FINAL}, timeout=30)["status"]
    runs.create("qt-wait-2", workflow, {"group": "g"})
    runs.create("qt-in-time", workflow, {"group": "k", "sleep": 1})
    second = runs.wait_phase("qt-wait-2", {"Queued", *FINAL}, timeout=30)["status"]
    in_time = runs.wait_phase("qt-in-time", {"Queued", *FINAL}, timeout=30)["status"]
    assert in_time["phase"] == "Queued", in_time

    for status, place in ((first, "number 1 of 1"), (second, "number 2 of 2")):
        condition = _condition(status)
        assert status["phase"] == "Queued", status
        assert (condition["status"], condition["reason"]) == ("Unknown", "Queued"), condition
        message = condition["message"]
        assert "key 'g'" in message, message
        assert f"{place} in the queue" in message, message
        assert "slots held by qt-holder" in message, message
        assert status["concurrencyKey"] == "g"

    outcomes = runs.outcomes(["qt-wait-1", "qt-wait-2", "qt-in-time"], timeout=90)
    report = _report(outcomes.values())
    assert outcomes["qt-in-time"].phase == "Succeeded", report
    for name in ("qt-wait-1", "qt-wait-2"):
        outcome = outcomes[name]
        _assert_cancelled_by_limit(outcome, reason="QueueTimeout")
        assert "queueTimeout (15s)" in outcome.condition["message"], report
        created = _time(kube.get_run(runs.namespace, name)["metadata"]["creationTimestamp"])
        waited = (_time(outcome.status["finishedAt"]) - created).total_seconds()
        assert 15 <= waited < 30, f"{name} waited {waited}s\n{report}"
        assert not runs.jobs(name), f"{name} timed out in the queue but ran a Job"
    assert runs.phase("qt-holder") == "Running", runs.status("qt-holder")
    Client(namespace=runs.namespace).cancel("qt-holder")
    runs.wait_phase("qt-holder", {"Cancelled"}, timeout=30)


# --- 9. Limits shared by several workflows -------------------------------------------------
def test_workflows_sharing_a_limit_count_their_runs_of_a_key_together(runs: Runs) -> None:
    """q-shared-a and q-shared-b share 'per-user' (one run per key): behind a run of A, runs
    of B and A of the same key queue in one queue, and run one at a time in arrival order;
    a run of another key does not wait."""
    runs.create("sh-a0", "q-shared-a", {"group": "u", "sleep": 6})
    runs.wait_running("sh-a0")
    runs.create("sh-other", "q-shared-b", {"group": "v", "sleep": 2})
    queued = [("sh-b0", "q-shared-b"), ("sh-a1", "q-shared-a"), ("sh-b1", "q-shared-b")]
    waiting: dict[str, dict[str, Any]] = {}
    for name, workflow in queued:  # one by one: each sees the ones before it queued
        runs.create(name, workflow, {"group": "u", "sleep": 2})
        waiting[name] = runs.wait_phase(name, {"Queued", *FINAL}, timeout=30)["status"]
    assert runs.phase("sh-a0") == "Running", "the first run ended too soon"
    for place, (name, _) in enumerate(queued, start=1):
        status = waiting[name]
        assert status["phase"] == "Queued", status
        condition = _condition(status)
        assert (condition["status"], condition["reason"]) == ("Unknown", "Queued"), condition
        message = condition["message"]
        assert "shared limit 'per-user'" in message, message
        assert f"number {place} of {place} in the queue" in message, message
        assert "slots held by sh-a0" in message, message

    names = ["sh-a0", *(name for name, _ in queued)]
    outcomes = runs.outcomes([*names, "sh-other"])
    report = _report(outcomes.values())
    assert {o.phase for o in outcomes.values()} == {"Succeeded"}, report
    keyed = [outcomes[n] for n in names]
    assert {o.status.get("concurrencyKey") for o in keyed} == {"u"}, report
    assert _max_overlap(keyed) == 1, report
    # One at a time, in arrival order, whichever workflow they belong to.
    assert [o.name for o in sorted(keyed, key=lambda o: o.start)] == names, report
    for before, after in itertools.pairwise(keyed):
        assert before.end <= after.start, report
        assert before.started_at <= after.started_at, report
    assert outcomes["sh-other"].overlaps(outcomes["sh-a0"]), report


def test_a_shared_limit_declared_differently_holds_runs_until_fixed(runs: Runs) -> None:
    """q-shared-odd names 'per-user' with two runs per key, q-shared-a with one: runs of
    both wait (SharedLimitConflict, naming the two) until the odd one agrees."""
    runs.apply("q-shared-a", "q-shared-odd")
    runs.create("sc-odd", "q-shared-odd", {"group": "u", "sleep": 2})
    runs.create("sc-a", "q-shared-a", {"group": "u", "sleep": 2})
    for name in ("sc-odd", "sc-a"):
        status = runs.wait_phase(name, {"Queued", *FINAL}, timeout=30)["status"]
        condition = _condition(status)
        assert status["phase"] == "Queued", status
        assert condition["status"] == "Unknown", condition
        assert condition["reason"] == "SharedLimitConflict", condition
        message = condition["message"]
        assert "Workflows q-shared-a, q-shared-odd share" in message, message
        assert "'per-user'" in message, message
    time.sleep(5)  # they stay so
    for name in ("sc-odd", "sc-a"):
        status = runs.status(name)
        still = (status.get("phase"), _condition(status)["reason"])
        assert still == ("Queued", "SharedLimitConflict"), status
        assert not runs.jobs(name), f"{name} waits, but ran a Job"

    client.CustomObjectsApi().patch_namespaced_custom_object(
        kube.GROUP, kube.VERSION, runs.namespace, "workflows", "q-shared-odd",
        {"spec": {"concurrency": {"maxRuns": 1}}},
    )  # fmt: skip
    outcomes = runs.outcomes(["sc-odd", "sc-a"], timeout=90)
    report = _report(outcomes.values())
    assert {o.phase for o in outcomes.values()} == {"Succeeded"}, report
    assert not outcomes["sc-odd"].overlaps(outcomes["sc-a"]), report


def test_runs_held_by_a_conflict_start_when_the_odd_workflow_goes(runs: Runs) -> None:
    """Only a run of q-shared-a waits on the conflict; deleting q-shared-odd (which has no
    runs) ends the conflict, and the run starts."""
    runs.apply("q-shared-a", "q-shared-odd")
    runs.create("sg-a", "q-shared-a", {"group": "u", "sleep": 1})
    status = runs.wait_phase("sg-a", {"Queued", *FINAL}, timeout=30)["status"]
    if (status["phase"], _condition(status)["reason"]) != ("Queued", "SharedLimitConflict"):
        pytest.fail(f"sg-a did not wait on the conflict: {status}")
    client.CustomObjectsApi().delete_namespaced_custom_object(
        kube.GROUP, kube.VERSION, runs.namespace, "workflows", "q-shared-odd"
    )
    assert runs.outcome("sg-a", timeout=30).phase == "Succeeded"


# --- 10. Rate limits ------------------------------------------------------------------------
RATE_WAIT = re.compile(
    r"waiting for rate limit '(?P<key>[^']+)' \((?P<limit>\d+) unit\(s\) per (?P<per>\w+), "
    r"1 per attempt\) until (?P<until>\S+)$"
)
POD_START_JITTER = 3.0
"""Seconds a step's pod may take longer to begin its work than another's, after its Job."""


@dataclass(frozen=True)
class Held:
    """A step seen Pending, waiting for a rate limit: until when, as its message said."""

    run: str
    key: str
    until: datetime
    message: str


def _watch_held(runs: Runs, names: list[str], timeout: float) -> dict[str, Held]:
    """Until every run has a step Job, the steps seen waiting for a rate limit (the last
    time each was seen so)."""
    held: dict[str, Held] = {}
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        assert time.monotonic() < deadline, f"no Job yet for {sorted(pending)}: {held}"
        for name in sorted(pending):
            status = runs.status(name)
            step = (status.get("steps") or {}).get("work") or {}
            if step.get("jobName") or status.get("phase") in FINAL:
                pending.discard(name)
                continue
            match = RATE_WAIT.search(step.get("message") or "")
            if match:  # the latest: a step woken before its turn waits again, for longer
                assert step.get("phase") == "Pending", status
                held[name] = Held(name, match["key"], _time(match["until"]), step["message"])
        time.sleep(0.3)
    return held


def _job(runs: Runs, name: str) -> client.V1Job:
    jobs = runs.jobs(name)
    assert len(jobs) == 1, f"{name}: {[j.metadata.name for j in jobs]}"
    return jobs[0]


def _created(job: client.V1Job) -> float:
    """When the API server made the Job (whole seconds: its timestamps are truncated)."""
    return job.metadata.creation_timestamp.timestamp()


def _assert_at_most_per_window(times: list[float], limit: int, window: float, what: str) -> None:
    """No ``limit`` + 1 of ``times`` in a window: each is ``window`` after the one ``limit``
    before it (``window`` already less what the clocks' resolution may take off)."""
    ordered = sorted(times)
    for before, after in zip(ordered, ordered[limit:], strict=False):
        assert after - before >= window, f"{what}: {after - before:.1f}s apart: {ordered}"


def test_a_rate_limit_lets_two_steps_start_per_ten_seconds(runs: Runs) -> None:
    """Six runs at once of a step that takes a unit of 'e2e-api' (2 per 10s): they start
    in pairs ten seconds apart; those over the limit wait Pending, saying until when, and
    are started then."""
    runs.apply("q-rate")
    names = [runs.create(f"rate-{i}", "q-rate", {"group": "g", "sleep": 0.5}) for i in range(6)]
    held = _watch_held(runs, names, timeout=90)
    outcomes = runs.outcomes(names, timeout=90)
    report = _report(outcomes.values())
    assert {o.phase for o in outcomes.values()} == {"Succeeded"}, report
    jobs = {name: _job(runs, name) for name in names}
    created = {name: _created(job) for name, job in jobs.items()}
    timeline = "\n".join(
        f"{n}: Job at {created[n]:.0f}, work at {outcomes[n].start:.2f}, "
        f"held {held[n].message if n in held else '-'}"
        for n in sorted(names, key=created.__getitem__)
    )
    for name, job in jobs.items():
        assert json.loads(job.metadata.annotations[RATE_LIMITS]) == [["e2e-api", 1]], name

    # By the API server's clock: at most two Jobs per 10s (creation times are truncated to
    # the second, so the third is at least 9s after the first).
    _assert_at_most_per_window(list(created.values()), 2, 9, f"Jobs\n{timeline}")
    # By the pods': the steps' work began as far apart, less their pods' start-up jitter.
    starts = [o.start for o in outcomes.values()]
    _assert_at_most_per_window(starts, 2, 10 - POD_START_JITTER, f"steps\n{timeline}")
    # Six runs, two a window: three windows, the last opening about 20s after the first.
    assert 19 <= max(created.values()) - min(created.values()) <= 26, timeline

    # The four over the limit waited Pending, each until its turn came, then started.
    assert len(held) >= 4, timeline
    for wait in held.values():
        assert wait.key == "e2e-api", wait
        assert "(2 unit(s) per 10s, 1 per attempt)" in wait.message, wait
        until = wait.until.timestamp()
        assert until <= created[wait.run] <= until + 3, f"{wait}\n{timeline}"
        assert outcomes[wait.run].start >= until, f"{wait}\n{timeline}"


def test_a_dynamic_rate_limit_key_limits_each_group_apart(runs: Runs) -> None:
    """One unit per 10s per input.group: two runs of each of two groups at once. The first
    of each group start at once, the second of each ten seconds later."""
    runs.apply("q-rate-dynamic")
    names = {g: [f"rated-{g.lower()}{i}" for i in range(2)] for g in ("A", "B")}
    for i in range(2):
        for group, keyed in names.items():
            runs.create(keyed[i], "q-rate-dynamic", {"group": group, "sleep": 0.5})
    everyone = [*names["A"], *names["B"]]
    held = _watch_held(runs, everyone, timeout=60)
    outcomes = runs.outcomes(everyone, timeout=60)
    report = _report(outcomes.values())
    assert {o.phase for o in outcomes.values()} == {"Succeeded"}, report
    created = {}
    for group, keyed in names.items():
        for name in keyed:
            job = _job(runs, name)
            assert json.loads(job.metadata.annotations[RATE_LIMITS]) == [[group, 1]], name
            created[name] = _created(job)
    timeline = "\n".join(
        f"{n}: Job at {created[n]:.0f}, work at {outcomes[n].start:.2f}, "
        f"held {held[n].message if n in held else '-'}"
        for n in sorted(everyone, key=created.__getitem__)
    )
    for group, (first, second) in names.items():
        # Within a group, one a window: the second waited for the first's.
        assert created[second] - created[first] >= 9, f"{group}\n{timeline}"
        assert outcomes[second].start - outcomes[first].start >= 10 - POD_START_JITTER, timeline
        assert second in held and held[second].key == group, f"{group}\n{timeline}"
        assert "(1 unit(s) per 10s, 1 per attempt)" in held[second].message, timeline
        assert first not in held, f"{first} waited\n{timeline}"
    # Across groups, no waiting: both firsts at once, and both seconds.
    for i in range(2):
        a, b = (created[names[g][i]] for g in ("A", "B"))
        assert abs(a - b) <= 3, timeline
