"""Admission over random histories: runs arrive, finish, are cancelled or deleted, and the
operator restarts, for every strategy; each admission is applied as the operator would and
checked against the documented rules.

The checks are the invariants (limits per key and in total, a partition of the waiting
runs, queue order within a key, keys in turn, one queued run per key for debounce) and,
for the exact outcome, a small model written from the documented rules, slot by slot.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubehatch.api.workflow import LimitStrategy
from kubehatch_operator.admission import Admission, Contender, Policy, admit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = ("a", "b", "c")
CIP = LimitStrategy.CANCEL_IN_PROGRESS
RR = LimitStrategy.GROUP_ROUND_ROBIN
DEBOUNCE = (LimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST, LimitStrategy.CANCEL_QUEUED_EXCEPT_OLDEST)


# --- the documented rules, written out ------------------------------------------------------


def arrival_order(run: Contender) -> tuple[datetime, int, str]:
    return (run.created, run.arrival, run.name)


def queue_order(policy: Policy, run: Contender) -> tuple[int, datetime, int, str]:
    priority = policy.default_priority if run.priority is None else run.priority
    return (-priority, run.created, run.arrival, run.name)


def key_limit(runs: Iterable[Contender], key: str, policy: Policy) -> int:
    """max_runs, or the limit of the key's newest non-leaving run that has one."""
    limited = [r for r in runs if r.key == key and not r.leaving and r.limit is not None]
    return max(limited, key=arrival_order).limit if limited else policy.max_runs


def waiting_runs(runs: Iterable[Contender]) -> list[Contender]:
    return [r for r in runs if not r.running and not r.leaving]


def head(queues: dict[str, list[Contender]], key: str) -> Contender:
    return queues[key][0]


@dataclass
class Expected:
    start: list[str] = field(default_factory=list)
    queue: list[str] = field(default_factory=list)
    cancel: set[str] = field(default_factory=set)
    kept: dict[str, str] = field(default_factory=dict)
    """Debounce: the waiting run each key keeps."""


def expected(runs: list[Contender], policy: Policy, served: str | None) -> Expected:
    """The outcome the documentation describes, computed without admission's code."""
    out = Expected()
    keys = sorted({r.key for r in runs})
    if policy.strategy is CIP:
        for key in keys:
            group = sorted((r for r in runs if r.key == key and not r.leaving), key=arrival_order)
            limit = key_limit(runs, key, policy)
            kept = group[len(group) - limit :] if limit < len(group) else group
            out.start += [r.name for r in kept if not r.running]
            out.cancel |= {r.name for r in group if r not in kept}
        return out
    queues = {
        key: sorted(
            (r for r in waiting_runs(runs) if r.key == key), key=lambda r: queue_order(policy, r)
        )
        for key in keys
    }
    room = {
        key: max(key_limit(runs, key, policy) - sum(r.running for r in runs if r.key == key), 0)
        for key in keys
    }
    if policy.strategy is LimitStrategy.CANCEL_NEWEST:
        for key in keys:
            out.start += [r.name for r in queues[key][: room[key]]]
            out.cancel |= {r.name for r in queues[key][room[key] :]}
        return out
    total = (
        math.inf
        if policy.max_runs_total is None
        else max(policy.max_runs_total - sum(r.running for r in runs), 0)
    )
    in_turn = policy.strategy is RR and policy.max_runs_total is not None
    last = served
    if last is None:
        started = [r for r in runs if r.running and r.started_at is not None]
        last = max(started, key=lambda r: r.started_at).key if started else None

    def pick(ready: list[str]) -> str:
        """The key whose head takes the next slot."""
        if in_turn and last is not None:
            top = min(queue_order(policy, head(queues, k))[0] for k in ready)
            candidates = [k for k in ready if queue_order(policy, head(queues, k))[0] == top]
            after = [k for k in candidates if k > last]
            return after[0] if after else candidates[0]
        return min(ready, key=lambda k: queue_order(policy, head(queues, k)))

    while total > 0:
        ready = [key for key in keys if queues[key] and room[key] > 0]
        if not ready:
            break
        key = pick(ready)
        out.start.append(queues[key].pop(0).name)
        room[key] -= 1
        total -= 1
        last = key
    if policy.strategy in DEBOUNCE:
        for key in keys:
            if not queues[key]:
                continue
            if policy.strategy is LimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST:
                kept = max(queues[key], key=arrival_order)
            else:
                kept = queues[key][0]
            out.kept[key] = kept.name
            out.cancel |= {r.name for r in queues[key] if r is not kept}
            queues[key] = [kept]
    # The rest wait, in the order they would start were slots to free up for them all.
    while ready := [key for key in keys if queues[key]]:
        key = pick(ready)
        out.queue.append(queues[key].pop(0).name)
        last = key
    return out


# --- the checks -----------------------------------------------------------------------------


def check_admission(
    runs: list[Contender], policy: Policy, served: str | None, result: Admission
) -> None:
    by_name = {r.name: r for r in runs}
    waiting = {r.name for r in waiting_runs(runs)}
    verdicts = [*result.start, *result.queue, *result.cancel]
    # Disjoint, no run twice, and only runs that were asked about.
    assert len(verdicts) == len(set(verdicts)), result
    assert set(verdicts) <= set(by_name), result
    # Every waiting run gets exactly one verdict; running runs only a cancel, by
    # CancelInProgress, and only a run that is not leaving already.
    assert set(result.start) | set(result.queue) | (set(result.cancel) & waiting) == waiting
    assert set(result.start) | set(result.queue) <= waiting
    pushed_out = set(result.cancel) - waiting
    if policy.strategy is CIP:
        assert all(by_name[n].running and not by_name[n].leaving for n in pushed_out), result
    else:
        assert not pushed_out, result
    if not policy.strategy.queues:
        assert result.queue == [], result
    # Slots: the starts fit the room of their key and the room in total.
    starts = Counter(by_name[n].key for n in result.start)
    for key, count in starts.items():
        held = sum(r.running for r in runs if r.key == key)
        limit = key_limit(runs, key, policy)
        if policy.strategy is CIP:
            kept_running = sum(
                r.running and not r.leaving and r.name not in result.cancel
                for r in runs
                if r.key == key
            )
            assert count + kept_running <= limit, (key, result)
        else:
            assert count <= max(limit - held, 0), (key, result)
    if policy.max_runs_total is not None:
        assert len(result.start) <= max(policy.max_runs_total - sum(r.running for r in runs), 0)
    # Queue order within a key: priority, then created, then arrival, then name.
    order = [by_name[n] for n in [*result.start, *result.queue]]
    for key in KEYS if policy.strategy is not CIP else ():
        mine = [r for r in order if r.key == key]
        assert mine == sorted(mine, key=lambda r: queue_order(policy, r)), (key, result)
    # Without keys in turn, the slots (and then the queue) go in queue order.
    if policy.strategy.queues and not (policy.strategy is RR and policy.max_runs_total):
        starting = [by_name[n] for n in result.start]
        assert starting == sorted(starting, key=lambda r: queue_order(policy, r)), result
        queued = [by_name[n] for n in result.queue]
        assert queued == sorted(queued, key=lambda r: queue_order(policy, r)), result
    # Debounce: at most one waiting run per key is left.
    if policy.strategy in DEBOUNCE:
        left = Counter(by_name[n].key for n in result.queue)
        assert max(left.values(), default=0) <= 1, result
    # The key served last is the key of the last start.
    if policy.strategy.queues and result.start:
        assert result.served == by_name[result.start[-1]].key, result
    if policy.strategy is RR and not result.start:
        assert result.served == served, result
    check_turns(runs, policy, served, result)
    # The exact outcome, slot by slot, as documented.
    model = expected(runs, policy, served)
    if not policy.strategy.queues:  # each key on its own: no order across keys
        assert sorted(result.start) == sorted(model.start), (model, result)
    else:
        assert result.start == model.start, (model, result)
    assert result.queue == model.queue, (model, result)
    assert set(result.cancel) == model.cancel, (model, result)
    if policy.strategy in DEBOUNCE:
        assert {by_name[n].key: n for n in result.queue} == model.kept, (model, result)


def check_turns(
    runs: list[Contender], policy: Policy, served: str | None, result: Admission
) -> None:
    """GroupRoundRobin with a total, heads of equal priority: no key is served twice in a
    row while another key with room has a run waiting."""
    if policy.strategy is not RR or policy.max_runs_total is None or served is None:
        return
    by_name = {r.name: r for r in runs}
    queues = {
        key: sorted(
            (r for r in waiting_runs(runs) if r.key == key), key=lambda r: queue_order(policy, r)
        )
        for key in KEYS
    }
    room = {
        key: key_limit(runs, key, policy) - sum(r.running for r in runs if r.key == key)
        for key in KEYS
    }
    last = served
    for name in result.start:
        key = by_name[name].key
        assert queues[key] and queues[key][0].name == name, (name, result)
        mine = queue_order(policy, queues[key][0])[0]
        if key == last:
            others = [
                k
                for k in KEYS
                if k != key
                and queues[k]
                and room[k] > 0
                and queue_order(policy, queues[k][0])[0] <= mine
            ]
            assert not others, f"{key} served twice in a row while {others} waited: {result}"
        queues[key].pop(0)
        room[key] -= 1
        last = key


# --- the histories --------------------------------------------------------------------------


@dataclass
class World:
    policy: Policy
    runs: dict[str, Contender] = field(default_factory=dict)
    served: str | None = None
    clock: int = 0
    """Seconds after T0: creation times have one-second resolution, so they tie."""
    arrivals: int = 0
    starts: int = 0
    history: list[str] = field(default_factory=list)
    """The keys of the runs started, in order."""
    stopping: set[str] = field(default_factory=set)
    """Runs CancelInProgress pushed out: they stop before the next step."""

    def step(self) -> None:
        """Admit, check the admission, apply it, check the result."""
        before = list(self.runs.values())
        if self.served is not None:
            # Were the operator to restart now, forgetting the key served last.
            check_admission(before, self.policy, None, admit(before, self.policy))
        result = admit(before, self.policy, self.served)
        check_admission(before, self.policy, self.served, result)
        for name in result.start:
            self.starts += 1
            started_at = T0 + timedelta(seconds=self.clock, microseconds=self.starts)
            self.runs[name] = replace(self.runs[name], running=True, started_at=started_at)
            self.history.append(self.runs[name].key)
        for name in result.cancel:
            if self.runs[name].running:
                self.runs[name] = replace(self.runs[name], leaving=True)
                self.stopping.add(name)
            else:
                del self.runs[name]
        if result.served is not None:
            self.served = result.served
        self.check_applied(before)

    def check_applied(self, before: list[Contender]) -> None:
        policy, after = self.policy, list(self.runs.values())
        if policy.max_runs_total is not None:
            assert sum(r.running for r in after) <= policy.max_runs_total
        for key in KEYS:
            limit = key_limit(before, key, policy)
            held = sum(r.running for r in before if r.key == key)
            if policy.strategy is CIP:
                # The runs pushed out stop; the others never exceed the limit.
                assert sum(r.running and not r.leaving for r in after if r.key == key) <= limit
            else:
                # Nothing is ever started over the limit (a lowered dynamic limit leaves
                # the runs that were running before).
                running = sum(r.running for r in after if r.key == key)
                assert running <= max(limit, held), (key, running, limit, held)
                if all(r.limit is None for r in before):
                    assert running <= policy.max_runs
            if policy.strategy in DEBOUNCE:
                assert len([r for r in waiting_runs(after) if r.key == key]) <= 1
            if not policy.strategy.queues:
                assert not waiting_runs(after)

    def settle(self) -> None:
        """Runs pushed out finish stopping; cancelled runs that never started go away."""
        for name in self.stopping:
            self.runs.pop(name, None)
        self.stopping.clear()
        for name, run in list(self.runs.items()):
            if run.leaving and not run.running:
                del self.runs[name]

    def apply(self, event: tuple[object, ...]) -> None:
        kind = event[0]
        names = sorted(self.runs)
        if kind == "arrive":
            for key, priority, limit, late in event[1]:
                self.arrivals += 1
                name = f"r{self.arrivals:03d}"
                self.runs[name] = Contender(
                    name,
                    key,
                    T0 + timedelta(seconds=self.clock - late),
                    False,
                    arrival=self.arrivals,
                    priority=priority,
                    limit=limit,
                )
        elif kind == "finish":
            running = sorted(n for n, r in self.runs.items() if r.running)
            if running:
                del self.runs[running[event[1] % len(running)]]
        elif kind == "cancel" and names:
            name = names[event[1] % len(names)]
            self.runs[name] = replace(self.runs[name], leaving=True)
        elif kind == "delete" and names:
            del self.runs[names[event[1] % len(names)]]
        elif kind == "restart":
            self.served = None
        elif kind == "tick":
            self.clock += 1


def policies() -> st.SearchStrategy[tuple[Policy, bool]]:
    """A policy, and whether runs carry their own limits (maxRunsExpression)."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[Policy, bool]:
        strategy = draw(st.sampled_from([*LimitStrategy, RR, RR]))  # the subtlest, thrice
        total = draw(st.one_of(st.none(), st.integers(1, 4))) if strategy.queues else None
        policy = Policy(
            strategy,
            max_runs=draw(st.integers(1, 3)),
            max_runs_total=total,
            default_priority=draw(st.integers(1, 3)),
        )
        return policy, draw(st.booleans())

    return build()


Event = tuple[object, ...]


def histories(dynamic: bool) -> st.SearchStrategy[list[tuple[Event, bool]]]:
    """Events, each with whether the operator admits right after it (or only after the
    next: arrivals and finishes pile up, as while the operator is busy)."""
    arrival = st.tuples(
        st.sampled_from(KEYS),
        st.one_of(st.none(), st.integers(1, 3)),
        st.integers(1, 3) if dynamic else st.none(),
        # Created this second (creation times tie), or seen late (as after a restart).
        st.sampled_from([0, 0, 0, 1]),
    )
    arrive = st.tuples(st.just("arrive"), st.lists(arrival, min_size=1, max_size=4))
    index = st.integers(0, 30)
    event = st.one_of(
        arrive,
        arrive,
        st.tuples(st.just("finish"), index),
        st.tuples(st.just("finish"), index),
        st.tuples(st.just("cancel"), index),
        st.tuples(st.just("delete"), index),
        st.tuples(st.just("restart")),
        st.tuples(st.just("restart")),
        st.tuples(st.just("tick")),
        st.tuples(st.just("tick")),
    )
    return st.lists(st.tuples(event, st.booleans()), min_size=15, max_size=60)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_admission_over_random_histories(data: st.DataObject) -> None:
    policy, dynamic = data.draw(policies(), label="policy, dynamic limits")
    world = World(policy)
    for event, admit_now in data.draw(histories(dynamic), label="events"):
        world.settle()
        world.apply(event)
        if admit_now:
            world.step()
    world.step()


@settings(max_examples=200, deadline=None)
@given(
    per_key=st.integers(1, 3),
    total=st.integers(1, 4),
    sizes=st.lists(st.integers(0, 5), min_size=2, max_size=3),
)
def test_round_robin_equal_priorities_one_slot_at_a_time(
    per_key: int, total: int, sizes: list[int]
) -> None:
    """Keys with waiting runs of one priority, slots freed one at a time: the keys with
    room take turns in name order, and no key is skipped while it has a run waiting."""
    policy = Policy(RR, max_runs=per_key, max_runs_total=total)
    world = World(policy)
    for n, count in enumerate(sizes):
        for _ in range(count):
            world.apply(("arrive", [(KEYS[n], None, None, 0)]))
    world.step()
    while any(not r.running for r in world.runs.values()):
        oldest = min(
            (r for r in world.runs.values() if r.running),
            key=lambda r: r.started_at,
        )
        del world.runs[oldest.name]
        world.step()
    # The keys took turns in name order, skipping only the keys with nothing left.
    left = dict(zip(KEYS, sizes, strict=False))
    turns: list[str] = []
    key = KEYS[-1]
    while any(left.values()):
        key = next(k for k in [*KEYS[KEYS.index(key) + 1 :], *KEYS] if left.get(k))
        left[key] -= 1
        turns.append(key)
    assert world.history == turns
