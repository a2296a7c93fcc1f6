"""Concurrency admission for every strategy, at and around the limit: one rule a test."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from kubehatch.api.workflow import ConcurrencySpec, LimitStrategy
from kubehatch_operator.admission import Admission, Contender, Policy, admit

T0 = datetime(2026, 1, 1, tzinfo=UTC)

CIP = LimitStrategy.CANCEL_IN_PROGRESS
NEWEST = LimitStrategy.CANCEL_NEWEST
QUEUE = LimitStrategy.QUEUE_NEWEST
RR = LimitStrategy.GROUP_ROUND_ROBIN
KEEP_NEWEST = LimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST
KEEP_OLDEST = LimitStrategy.CANCEL_QUEUED_EXCEPT_OLDEST
QUEUEING = [QUEUE, RR, KEEP_NEWEST, KEEP_OLDEST]


def run(
    name: str,
    key: str = "k",
    *,
    at: int,
    arrival: int | None = None,
    running: bool = False,
    leaving: bool = False,
    priority: int | None = None,
    limit: int | None = None,
    started: int | None = None,
) -> Contender:
    """A contender created `at` seconds after T0 (arrival defaults to `at`), started
    `started` seconds after T0 when given."""
    return Contender(
        name,
        key,
        T0 + timedelta(seconds=at),
        running,
        arrival=at if arrival is None else arrival,
        leaving=leaving,
        priority=priority,
        limit=limit,
        started_at=None if started is None else T0 + timedelta(seconds=started),
    )


def verdicts(result: Admission) -> tuple[list[str], list[str], list[str]]:
    return result.start, result.queue, result.cancel


# --- every strategy -------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", list(LimitStrategy))
def test_under_the_limit_everything_starts_whatever_the_strategy(
    strategy: LimitStrategy,
) -> None:
    runs = [run("a", at=0), run("b", "other", at=1)]
    result = admit(runs, Policy(strategy, max_runs=2))
    assert sorted(result.start) == ["a", "b"]
    assert result.queue == [] and result.cancel == []


@pytest.mark.parametrize("strategy", list(LimitStrategy))
@pytest.mark.parametrize("served", [None, "k"])
def test_nothing_to_decide_when_nothing_waits(strategy: LimitStrategy, served: str | None) -> None:
    total = 1 if strategy.queues else None
    policy = Policy(strategy, max_runs_total=total)
    assert verdicts(admit([], policy, served)) == ([], [], [])
    held = [run("r", at=0, running=True), run("gone", at=1, leaving=True)]
    assert verdicts(admit(held, policy, served)) == ([], [], [])


@pytest.mark.parametrize("strategy", list(LimitStrategy))
def test_a_leaving_run_that_is_not_running_wants_nothing(strategy: LimitStrategy) -> None:
    runs = [run("gone", at=0, leaving=True), run("new", at=1)]
    result = admit(runs, Policy(strategy, max_runs=1))
    assert verdicts(result) == (["new"], [], [])


@pytest.mark.parametrize("strategy", list(LimitStrategy))
def test_the_running_runs_alone_get_no_verdict(strategy: LimitStrategy) -> None:
    runs = [run("r1", at=0, running=True), run("r2", at=1, running=True, leaving=True)]
    assert verdicts(admit(runs, Policy(strategy, max_runs=1))) == ([], [], [])


def test_the_policy_of_a_concurrency_spec() -> None:
    spec = ConcurrencySpec(expression="input.user", max_runs=3, max_runs_total=5, limit_strategy=RR)
    assert Policy.of(spec, 2) == Policy(RR, 3, 5, 2)
    assert Policy.of(spec).default_priority == 1
    assert Policy(QUEUE).per_key and not Policy(QUEUE, max_runs_total=1).per_key


# --- CancelInProgress -----------------------------------------------------------------------


def test_cancel_in_progress_cancels_the_oldest_running() -> None:
    runs = [run("old", at=0, running=True), run("new", at=5)]
    assert verdicts(admit(runs, Policy(CIP))) == (["new"], [], ["old"])


def test_cancel_in_progress_keeps_the_newest_n_across_a_burst() -> None:
    runs = [run("r1", at=0, running=True), run("r2", at=1), run("r3", at=2), run("r4", at=3)]
    result = admit(runs, Policy(CIP, max_runs=2))
    assert sorted(result.start) == ["r3", "r4"]
    assert sorted(result.cancel) == ["r1", "r2"]
    assert result.queue == []


def test_cancel_in_progress_keeps_a_running_run_that_is_among_the_newest() -> None:
    runs = [run("r1", at=0, running=True), run("r2", at=1, running=True), run("r3", at=2)]
    result = admit(runs, Policy(CIP, max_runs=2))
    assert verdicts(result) == (["r3"], [], ["r1"])


def test_cancel_in_progress_ignores_priority() -> None:
    runs = [run("urgent", at=0, priority=3), run("plain", at=1, priority=1)]
    assert verdicts(admit(runs, Policy(CIP))) == (["plain"], [], ["urgent"])


def test_cancel_in_progress_breaks_created_ties_by_arrival_then_name() -> None:
    # One-second timestamps: the same second, the operator saw "b" after "a".
    runs = [run("b", at=0, arrival=2), run("a", at=0, arrival=1)]
    assert verdicts(admit(runs, Policy(CIP))) == (["b"], [], ["a"])
    same = [run("y", at=0, arrival=1), run("x", at=0, arrival=1)]
    assert verdicts(admit(same, Policy(CIP))) == (["y"], [], ["x"])
    # Creation time comes before arrival.
    late = [run("early", at=0, arrival=9), run("later", at=1, arrival=0)]
    assert verdicts(admit(late, Policy(CIP))) == (["later"], [], ["early"])


def test_cancel_in_progress_leaving_runs_are_neither_kept_nor_cancelled() -> None:
    # A cancelled run stopping its pods does not push the new run out, nor is it
    # counted among the newest: the run before it is the one that stays.
    runs = [
        run("r1", at=0, running=True),
        run("r2", at=1, running=True, leaving=True),
        run("r3", at=2, leaving=True),
    ]
    assert verdicts(admit(runs, Policy(CIP))) == ([], [], [])
    runs.append(run("r4", at=3))
    assert verdicts(admit(runs, Policy(CIP))) == (["r4"], [], ["r1"])


def test_cancel_in_progress_is_per_key() -> None:
    runs = [run("a1", "a", at=0, running=True), run("b1", "b", at=1), run("a2", "a", at=2)]
    result = admit(runs, Policy(CIP))
    assert sorted(result.start) == ["a2", "b1"]
    assert result.cancel == ["a1"]


# --- CancelNewest ---------------------------------------------------------------------------


def test_cancel_newest_keeps_the_running_and_cancels_the_new() -> None:
    runs = [run("old", at=0, running=True), run("new", at=5), run("newer", at=6)]
    assert verdicts(admit(runs, Policy(NEWEST, max_runs=1))) == ([], [], ["new", "newer"])
    assert verdicts(admit(runs, Policy(NEWEST, max_runs=2))) == (["new"], [], ["newer"])


def test_cancel_newest_hands_the_free_slots_out_in_queue_order() -> None:
    runs = [run("low", at=0, priority=1), run("high", at=1, priority=3), run("mid", at=2)]
    result = admit(runs, Policy(NEWEST, max_runs=1, default_priority=2))
    assert (result.start, result.queue, sorted(result.cancel)) == (["high"], [], ["low", "mid"])


def test_cancel_newest_a_leaving_running_run_holds_its_slot() -> None:
    runs = [run("stopping", at=0, running=True, leaving=True), run("new", at=1)]
    assert verdicts(admit(runs, Policy(NEWEST))) == ([], [], ["new"])


def test_cancel_newest_is_per_key() -> None:
    runs = [run("a1", "a", at=0, running=True), run("a2", "a", at=1), run("b1", "b", at=2)]
    assert verdicts(admit(runs, Policy(NEWEST))) == (["b1"], [], ["a2"])


# --- QueueNewest and the queue order ---------------------------------------------------------


def test_queue_newest_starts_in_arrival_order_when_slots_free_up() -> None:
    runs = [run("b", at=2), run("a", at=1), run("c", at=3), run("x", at=0, running=True)]
    result = admit(runs, Policy(QUEUE, max_runs=2))
    assert verdicts(result) == (["a"], ["b", "c"], [])


def test_queue_newest_limits_are_per_key() -> None:
    runs = [
        run("u1-a", "u1", at=0, running=True),
        run("u1-b", "u1", at=1),
        run("u2-a", "u2", at=2),
    ]
    assert verdicts(admit(runs, Policy(QUEUE))) == (["u2-a"], ["u1-b"], [])


def test_queue_newest_a_leaving_running_run_holds_its_slot() -> None:
    runs = [run("stopping", at=0, running=True, leaving=True), run("new", at=1)]
    assert verdicts(admit(runs, Policy(QUEUE))) == ([], ["new"], [])


def test_queue_order_is_priority_then_created_then_arrival_then_name() -> None:
    runs = [
        run("low-first", at=0, arrival=0, priority=1),
        run("high-later", at=5, arrival=5, priority=3),
        run("mid-b", at=2, arrival=4, priority=2),
        run("mid-a", at=2, arrival=3, priority=2),
        run("mid-early", at=1, arrival=9, priority=2),
        run("mid-z", at=2, arrival=4, priority=2),
    ]
    result = admit(runs, Policy(QUEUE, max_runs=2))
    assert result.start == ["high-later", "mid-early"]
    assert result.queue == ["mid-a", "mid-b", "mid-z", "low-first"]


@pytest.mark.parametrize(
    ("default", "order"),
    [(1, ["high", "low", "none"]), (2, ["high", "none", "low"]), (3, ["none", "high", "low"])],
)
def test_a_run_without_priority_takes_the_default(default: int, order: list[str]) -> None:
    # Ties of priority go by arrival: low, then none, then high.
    runs = [run("low", at=0, priority=1), run("none", at=1), run("high", at=2, priority=3)]
    result = admit(runs, Policy(QUEUE, max_runs=1, default_priority=default))
    assert [*result.start, *result.queue] == order


def test_the_total_caps_the_runs_of_all_keys_in_queue_order() -> None:
    runs = [
        run("a0", "a", at=0, running=True),
        run("b1", "b", at=1),
        run("a2", "a", at=2),
        run("c3", "c", at=3),
        run("b4", "b", at=4),
    ]
    result = admit(runs, Policy(QUEUE, max_runs=2, max_runs_total=3))
    assert verdicts(result) == (["b1", "a2"], ["c3", "b4"], [])


def test_a_leaving_running_run_counts_against_the_total() -> None:
    runs = [run("stopping", "a", at=0, running=True, leaving=True), run("b1", "b", at=1)]
    assert verdicts(admit(runs, Policy(QUEUE, max_runs_total=1))) == ([], ["b1"], [])


def test_a_full_key_does_not_hold_up_the_others_under_a_total() -> None:
    runs = [
        run("a0", "a", at=0, running=True),
        run("a1", "a", at=1, priority=3),
        run("b2", "b", at=2),
    ]
    result = admit(runs, Policy(QUEUE, max_runs=1, max_runs_total=2))
    assert verdicts(result) == (["b2"], ["a1"], [])


def test_huge_limits_are_no_limit() -> None:
    runs = [run(f"r{i}", f"k{i % 2}", at=i) for i in range(6)]
    for strategy in QUEUEING:
        result = admit(runs, Policy(strategy, max_runs=2**63, max_runs_total=10**30))
        assert sorted(result.start) == sorted(r.name for r in runs), strategy


# --- dynamic limits -------------------------------------------------------------------------


def test_the_newest_run_of_a_key_sets_its_limit() -> None:
    runs = [run("r1", at=0, limit=1), run("r2", at=1, limit=1), run("r3", at=2, limit=3)]
    result = admit(runs, Policy(QUEUE, max_runs=1))
    assert sorted(result.start) == ["r1", "r2", "r3"]
    lowered = [*runs, run("r4", at=3, limit=2)]
    assert verdicts(admit(lowered, Policy(QUEUE, max_runs=5))) == (["r1", "r2"], ["r3", "r4"], [])


def test_the_newest_by_arrival_sets_the_limit_not_the_first_in_queue() -> None:
    runs = [run("old-high", at=0, priority=3, limit=3), run("new-low", at=1, limit=1)]
    result = admit(runs, Policy(QUEUE, max_runs=5))
    assert verdicts(result) == (["old-high"], ["new-low"], [])


def test_a_leaving_run_does_not_set_the_limit() -> None:
    runs = [
        run("r1", at=0, running=True, limit=1),
        run("r2", at=1, limit=1),
        run("r3", at=2, running=True, leaving=True, limit=3),
    ]
    assert verdicts(admit(runs, Policy(QUEUE, max_runs=3))) == ([], ["r2"], [])


def test_without_a_run_limit_the_key_takes_max_runs() -> None:
    runs = [run("r1", at=0), run("r2", at=1), run("r3", at=2)]
    assert verdicts(admit(runs, Policy(QUEUE, max_runs=2))) == (["r1", "r2"], ["r3"], [])
    stale = [run("r0", at=0, leaving=True, running=True, limit=5), *runs[1:]]
    assert verdicts(admit(stale, Policy(QUEUE, max_runs=2))) == (["r2"], ["r3"], [])


def test_dynamic_limits_are_per_key() -> None:
    runs = [
        run("a1", "a", at=0, limit=2),
        run("a2", "a", at=1, limit=2),
        run("b1", "b", at=2, limit=1),
        run("b2", "b", at=3, limit=1),
    ]
    result = admit(runs, Policy(QUEUE, max_runs=1))
    assert verdicts(result) == (["a1", "a2", "b1"], ["b2"], [])


def test_cancel_in_progress_keeps_the_dynamic_limit_of_newest() -> None:
    runs = [run(f"r{i}", at=i, running=i < 2, limit=3) for i in range(4)]
    assert verdicts(admit(runs, Policy(CIP, max_runs=1))) == (["r2", "r3"], [], ["r0"])


def test_cancel_newest_uses_the_dynamic_limit() -> None:
    runs = [run("r1", at=0, running=True, limit=1), run("r2", at=1, limit=2), run("r3", at=2)]
    # r3 has no limit of its own: the newest run that has one (r2) sets the key's.
    assert verdicts(admit(runs, Policy(NEWEST, max_runs=1))) == (["r2"], [], ["r3"])


# --- GroupRoundRobin ------------------------------------------------------------------------


def test_round_robin_without_a_total_is_queue_newest() -> None:
    runs = [
        run("a0", "a", at=0, running=True),
        run("a1", "a", at=1),
        run("b2", "b", at=2, priority=2),
        run("b3", "b", at=3, priority=3),
        run("c4", "c", at=4),
        run("b5", "b", at=5),
    ]
    result = admit(runs, Policy(RR, max_runs=2), served="b")
    assert verdicts(result) == (["b3", "b2", "a1", "c4"], ["b5"], [])
    assert verdicts(result) == verdicts(admit(runs, Policy(QUEUE, max_runs=2)))


def test_round_robin_shares_the_total_across_keys() -> None:
    # A busy key with five waiting runs and a quiet one with one: the quiet one is not starved.
    runs = [run(f"busy-{i}", "busy", at=i) for i in range(5)] + [run("quiet", "quiet", at=10)]
    result = admit(runs, Policy(RR, max_runs=5, max_runs_total=2))
    assert verdicts(result) == (["busy-0", "quiet"], ["busy-1", "busy-2", "busy-3", "busy-4"], [])
    assert result.served == "quiet"


def test_round_robin_counts_running_runs_against_the_total() -> None:
    runs = [run("r", "a", at=0, running=True), run("w1", "a", at=1), run("w2", "b", at=2)]
    policy = Policy(RR, max_runs=2, max_runs_total=2)
    assert verdicts(admit(runs, policy)) == (["w1"], ["w2"], [])
    full = admit([*runs, run("r2", "b", at=0, running=True)], policy)
    assert verdicts(full) == ([], ["w1", "w2"], [])


def _three_keys() -> list[Contender]:
    """Two waiting runs for each of keys a, b, c; c's arrived first."""
    return [
        run("c1", "c", at=0),
        run("c2", "c", at=1),
        run("a1", "a", at=2),
        run("a2", "a", at=3),
        run("b1", "b", at=4),
        run("b2", "b", at=5),
    ]


@pytest.mark.parametrize(
    ("served", "first"),
    [("a", ["b1", "c1", "a1"]), ("b", ["c1", "a1", "b1"]), ("c", ["a1", "b1", "c1"])],
)
def test_round_robin_goes_on_after_the_key_served_last(served: str, first: list[str]) -> None:
    result = admit(_three_keys(), Policy(RR, max_runs=5, max_runs_total=3), served=served)
    assert result.start == first
    assert result.served == first[-1][0]


def test_round_robin_turns_follow_the_names_and_wrap() -> None:
    # The key served last need not be waiting, nor exist any more: the next name after it.
    runs = _three_keys()
    policy = Policy(RR, max_runs=5, max_runs_total=4)
    assert admit(runs, policy, served="bb").start == ["c1", "a1", "b1", "c2"]
    assert admit(runs, policy, served="0").start == ["a1", "b1", "c1", "a2"]
    assert admit(runs, policy, served="z").start == ["a1", "b1", "c1", "a2"]


def test_round_robin_without_served_resumes_after_the_run_started_last() -> None:
    runs = [
        *_three_keys(),
        run("a0", "a", at=0, running=True, started=50),
        run("b0", "b", at=0, running=True, started=60),
        run("c0", "c", at=0, running=True, started=40),
    ]
    result = admit(runs, Policy(RR, max_runs=5, max_runs_total=5))
    assert result.start == ["c1", "a1"]
    assert result.served == "a"
    # A leaving run still running counts: it was handed a slot.
    runs.append(run("a9", "a", at=0, running=True, leaving=True, started=70))
    assert admit(runs, Policy(RR, max_runs=5, max_runs_total=6)).start == ["b1", "c1"]
    # `served` wins over the started times.
    assert admit(runs, Policy(RR, max_runs=5, max_runs_total=6), served="c").start == [
        "a1",
        "b1",
    ]


def test_round_robin_with_neither_starts_with_the_first_in_queue_order() -> None:
    result = admit(_three_keys(), Policy(RR, max_runs=5, max_runs_total=3))
    assert result.start == ["c1", "a1", "b1"]
    urgent = [*_three_keys(), run("b9", "b", at=9, priority=3)]
    assert admit(urgent, Policy(RR, max_runs=5, max_runs_total=2)).start == ["b9", "c1"]


def test_round_robin_a_higher_priority_head_goes_first() -> None:
    runs = [
        run("a1", "a", at=0),
        run("b1", "b", at=1),
        run("c1", "c", at=2, priority=3),
        run("c2", "c", at=3, priority=3),
        run("c3", "c", at=4),
    ]
    result = admit(runs, Policy(RR, max_runs=5, max_runs_total=4), served="c")
    # c's head outranks the others as long as it is urgent; then the turns resume after c.
    assert result.start == ["c1", "c2", "a1", "b1"]
    assert result.queue == ["c3"]
    assert result.served == "b"


def test_round_robin_keys_of_equal_head_priority_take_turns() -> None:
    runs = [
        run("a1", "a", at=0, priority=3),
        run("a2", "a", at=1, priority=3),
        run("b1", "b", at=2),
        run("c1", "c", at=3, priority=3),
    ]
    result = admit(runs, Policy(RR, max_runs=5, max_runs_total=3), served="a")
    assert result.start == ["c1", "a1", "a2"]
    assert result.queue == ["b1"]


def test_round_robin_skips_a_key_without_room() -> None:
    runs = [
        run("a0", "a", at=0, running=True),
        run("a1", "a", at=1),
        run("b1", "b", at=2),
        run("c1", "c", at=3),
    ]
    result = admit(runs, Policy(RR, max_runs=1, max_runs_total=3), served="c")
    assert result.start == ["b1", "c1"]
    assert result.queue == ["a1"]
    assert result.served == "c"


def test_round_robin_served_stays_when_no_slot_is_handed_out() -> None:
    runs = [run("a0", "a", at=0, running=True), run("b1", "b", at=1)]
    result = admit(runs, Policy(RR, max_runs=1, max_runs_total=1), served="a")
    assert verdicts(result) == ([], ["b1"], [])
    assert result.served == "a"


def test_round_robin_queue_lists_the_rest_in_turn() -> None:
    runs = [run(f"{k}{i}", k, at=10 * i + ord(k)) for k in "abc" for i in range(1, 3)]
    result = admit(runs, Policy(RR, max_runs=5, max_runs_total=1), served="a")
    assert result.start == ["b1"]
    assert result.queue == ["c1", "a1", "b2", "c2", "a2"]


def test_round_robin_queue_puts_a_higher_priority_head_first() -> None:
    runs = [
        run("a0", "a", at=0, running=True),
        run("a1", "a", at=1),
        run("b1", "b", at=2),
        run("c1", "c", at=3, priority=3),
        run("c2", "c", at=4),
    ]
    result = admit(runs, Policy(RR, max_runs=5, max_runs_total=1), served="a")
    assert verdicts(result) == ([], ["c1", "a1", "b1", "c2"], [])


def test_round_robin_queue_without_served_starts_with_the_first_in_queue_order() -> None:
    # Nothing can start and nothing says which key was served last.
    runs = [run("a0", "a", at=0, running=True), run("b1", "b", at=1), run("a2", "a", at=2)]
    result = admit(runs, Policy(RR, max_runs=5, max_runs_total=1))
    assert verdicts(result) == ([], ["b1", "a2"], [])
    assert result.served is None


def simulate(runs: list[Contender], policy: Policy, *, pass_served: bool = True) -> list[str]:
    """Admit, start what is admitted, then let the oldest running run finish; repeat.

    Returns the runs in the order they started. Without `pass_served`, every admission is
    as after an operator restart: round robin goes by the run started last."""
    waiting = {r.name: r for r in runs}
    running: list[Contender] = []
    order: list[str] = []
    served: str | None = None
    clock = 100
    while waiting or running:
        result = admit([*waiting.values(), *running], policy, served if pass_served else None)
        assert not result.cancel
        for name in result.start:
            clock += 1
            started = waiting.pop(name)
            running.append(
                Contender(
                    started.name,
                    started.key,
                    started.created,
                    True,
                    started.arrival,
                    started_at=T0 + timedelta(seconds=clock),
                )
            )
            order.append(name)
        served = result.served
        assert running, "nothing runs and nothing starts: stuck"
        running.pop(0)  # one slot frees at a time: the oldest running run finishes
    return order


@pytest.mark.parametrize("max_runs", [1, 2, 5])
@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("pass_served", [True, False])
def test_round_robin_acceptance_one_slot_frees_at_a_time(
    max_runs: int, interleaved: bool, pass_served: bool
) -> None:
    keys = "ABC"
    if interleaved:
        runs = [
            run(f"{k}{i}", k, at=0, arrival=3 * i + n) for i in range(5) for n, k in enumerate(keys)
        ]
    else:
        runs = [
            run(f"{k}{i}", k, at=n, arrival=5 * n + i) for n, k in enumerate(keys) for i in range(5)
        ]
    order = simulate(runs, Policy(RR, max_runs=max_runs, max_runs_total=2), pass_served=pass_served)
    assert [name[0] for name in order] == list("ABC" * 5)
    assert order[:6] == ["A0", "B0", "C0", "A1", "B1", "C1"]


def test_queue_newest_with_a_total_serves_the_queue_order_not_the_keys_in_turn() -> None:
    # The same load under QueueNewest: the oldest runs first, whatever their key.
    runs = [
        run(f"{k}{i}", k, at=n, arrival=5 * n + i) for n, k in enumerate("ABC") for i in range(5)
    ]
    order = simulate(runs, Policy(QUEUE, max_runs=5, max_runs_total=2))
    assert order == sorted(order)


# --- debounce -------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", [KEEP_NEWEST, KEEP_OLDEST])
def test_debounce_starts_as_queue_newest_while_there_is_room(strategy: LimitStrategy) -> None:
    runs = [run("r1", at=0), run("r2", at=1), run("r3", at=2)]
    assert verdicts(admit(runs, Policy(strategy, max_runs=3))) == (["r1", "r2", "r3"], [], [])
    result = admit(runs, Policy(strategy, max_runs=2))
    assert verdicts(result) == (["r1", "r2"], ["r3"], [])


def test_cancel_queued_except_newest_keeps_the_newest_waiting_run() -> None:
    runs = [run("r0", at=0, running=True), run("r1", at=1), run("r2", at=2), run("r3", at=3)]
    result = admit(runs, Policy(KEEP_NEWEST))
    assert (result.start, result.queue, sorted(result.cancel)) == ([], ["r3"], ["r1", "r2"])


def test_cancel_queued_except_oldest_keeps_the_oldest_waiting_run() -> None:
    runs = [run("r0", at=0, running=True), run("r1", at=1), run("r2", at=2), run("r3", at=3)]
    result = admit(runs, Policy(KEEP_OLDEST))
    assert (result.start, result.queue, sorted(result.cancel)) == ([], ["r1"], ["r2", "r3"])


def test_debounce_keeps_one_per_key_after_the_starts() -> None:
    runs = [
        run("a1", "a", at=0),
        run("a2", "a", at=1),
        run("a3", "a", at=2),
        run("a4", "a", at=3),
        run("b1", "b", at=4),
    ]
    newest = admit(runs, Policy(KEEP_NEWEST, max_runs=1))
    assert (newest.start, newest.queue, sorted(newest.cancel)) == (
        ["a1", "b1"],
        ["a4"],
        ["a2", "a3"],
    )
    oldest = admit(runs, Policy(KEEP_OLDEST, max_runs=1))
    assert (oldest.start, oldest.queue, sorted(oldest.cancel)) == (
        ["a1", "b1"],
        ["a2"],
        ["a3", "a4"],
    )


def test_debounce_under_a_total_keeps_one_per_key_of_those_left_waiting() -> None:
    runs = [run("a1", "a", at=0), run("a2", "a", at=1), run("b1", "b", at=2), run("b2", "b", at=3)]
    result = admit(runs, Policy(KEEP_OLDEST, max_runs=2, max_runs_total=1))
    assert (result.start, result.queue, sorted(result.cancel)) == (["a1"], ["a2", "b1"], ["b2"])


def test_debounce_with_priorities_newest_by_arrival_oldest_by_queue_order() -> None:
    runs = [
        run("r0", at=0, running=True),
        run("r1", at=1),
        run("r2", at=2, priority=3),
        run("r3", at=3),
    ]
    newest = admit(runs, Policy(KEEP_NEWEST))
    assert (newest.queue, sorted(newest.cancel)) == (["r3"], ["r1", "r2"])
    oldest = admit(runs, Policy(KEEP_OLDEST))
    assert (oldest.queue, sorted(oldest.cancel)) == (["r2"], ["r1", "r3"])


def test_cancel_queued_except_newest_keeps_the_newest_even_when_it_goes_first() -> None:
    runs = [
        run("r0", at=0, running=True),
        run("r1", at=1),
        run("r2", at=2),
        run("r3", at=3, priority=3),
    ]
    newest = admit(runs, Policy(KEEP_NEWEST))
    assert (newest.queue, sorted(newest.cancel)) == (["r3"], ["r1", "r2"])
    oldest = admit(runs, Policy(KEEP_OLDEST))
    assert (oldest.queue, sorted(oldest.cancel)) == (["r3"], ["r1", "r2"])
    # Without priorities, the oldest keeps the first to arrive.
    plain = [replace(r, priority=None) for r in runs]
    assert admit(plain, Policy(KEEP_OLDEST)).queue == ["r1"]
    assert admit(plain, Policy(KEEP_NEWEST)).queue == ["r3"]
