"""Concurrency admission for every strategy, at and around the limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubehatch.api.workflow import LimitStrategy
from kubehatch_operator.admission import Contender, admit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(name: str, key: str = "k", *, at: int, running: bool = False) -> Contender:
    return Contender(name, key, T0 + timedelta(seconds=at), running)


def test_under_the_limit_everything_starts_whatever_the_strategy() -> None:
    runs = [run("a", at=0), run("b", "other", at=1)]
    for strategy in LimitStrategy:
        result = admit(runs, 2, strategy)
        assert sorted(result.start) == ["a", "b"], strategy
        assert result.queue == [] and result.cancel == []


def test_cancel_in_progress_cancels_the_oldest_running() -> None:
    runs = [run("old", at=0, running=True), run("new", at=5)]
    result = admit(runs, 1, LimitStrategy.CANCEL_IN_PROGRESS)
    assert (result.start, result.cancel) == (["new"], ["old"])


def test_cancel_in_progress_keeps_the_newest_n_across_a_burst() -> None:
    runs = [run("r1", at=0, running=True), run("r2", at=1), run("r3", at=2), run("r4", at=3)]
    result = admit(runs, 2, LimitStrategy.CANCEL_IN_PROGRESS)
    assert result.start == ["r3", "r4"]
    assert result.cancel == ["r1", "r2"]


def test_cancel_newest_keeps_the_running_and_cancels_the_new() -> None:
    runs = [run("old", at=0, running=True), run("new", at=5), run("newer", at=6)]
    result = admit(runs, 1, LimitStrategy.CANCEL_NEWEST)
    assert (result.start, result.cancel, result.queue) == ([], ["new", "newer"], [])
    result = admit(runs, 2, LimitStrategy.CANCEL_NEWEST)
    assert (result.start, result.cancel) == (["new"], ["newer"])


def test_queue_newest_starts_in_arrival_order_when_slots_free_up() -> None:
    runs = [run("b", at=2), run("a", at=1), run("c", at=3), run("x", at=0, running=True)]
    result = admit(runs, 2, LimitStrategy.QUEUE_NEWEST)
    assert (result.start, result.queue, result.cancel) == (["a"], ["b", "c"], [])


def test_limits_are_per_key() -> None:
    runs = [run("u1-a", "u1", at=0, running=True), run("u1-b", "u1", at=1), run("u2-a", "u2", at=2)]
    result = admit(runs, 1, LimitStrategy.QUEUE_NEWEST)
    assert (result.start, result.queue) == (["u2-a"], ["u1-b"])


def test_round_robin_shares_the_total_across_keys() -> None:
    # A busy key with five waiting runs and a quiet one with one: the quiet one is not starved.
    runs = [run(f"busy-{i}", "busy", at=i) for i in range(5)] + [run("quiet", "quiet", at=10)]
    result = admit(runs, 2, LimitStrategy.GROUP_ROUND_ROBIN)
    assert result.start == ["busy-0", "quiet"]
    assert result.queue == ["busy-1", "busy-2", "busy-3", "busy-4"]


def test_round_robin_counts_running_runs_against_the_total() -> None:
    runs = [run("r", "a", at=0, running=True), run("w1", "a", at=1), run("w2", "b", at=2)]
    result = admit(runs, 2, LimitStrategy.GROUP_ROUND_ROBIN)
    assert (result.start, result.queue) == (["w1"], ["w2"])
    full = admit([*runs, run("r2", "b", at=0, running=True)], 2, LimitStrategy.GROUP_ROUND_ROBIN)
    assert (full.start, full.queue) == ([], ["w1", "w2"])
