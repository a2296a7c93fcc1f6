"""Which finished runs retention deletes, and when it looks again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubehatch_operator.retention import FinishedRun, sweep

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUNS = [FinishedRun(f"r{i}", "wf", T0 + timedelta(seconds=10 * i)) for i in range(5)]


def test_nothing_without_ttl_or_limit() -> None:
    result = sweep(RUNS, None, None, T0 + timedelta(days=1))
    assert result.delete == [] and result.next_at is None


def test_history_limit_keeps_the_newest() -> None:
    assert sweep(RUNS, None, 2, T0).delete == ["r0", "r1", "r2"]
    assert sweep(RUNS, None, 0, T0).delete == ["r0", "r1", "r2", "r3", "r4"]
    assert sweep(RUNS, None, 10, T0).delete == []


def test_ttl_deletes_expired_runs_and_says_when_the_next_expires() -> None:
    result = sweep(RUNS, 30, None, T0 + timedelta(seconds=45))
    assert result.delete == ["r0", "r1"]  # finished at 0s and 10s: expired at 30s and 40s
    assert result.next_at == T0 + timedelta(seconds=50)


def test_ttl_boundary_is_inclusive() -> None:
    assert sweep(RUNS[:1], 30, None, T0 + timedelta(seconds=30)).delete == ["r0"]
    assert sweep(RUNS[:1], 30, None, T0 + timedelta(seconds=29)).delete == []


def test_both_rules_together() -> None:
    result = sweep(RUNS, 35, 3, T0 + timedelta(seconds=40))
    assert result.delete == ["r0", "r1"]
    assert result.next_at == T0 + timedelta(seconds=55)  # r2 expires next
