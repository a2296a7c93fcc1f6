"""One-off times: fire once when due, never twice, not while suspended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from kubehatch_operator.triggers.model import WorkflowInfo
from kubehatch_operator.triggers.schedules import at_key, at_run, plan_at, run_name

T = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def wf(*at: datetime, fired: dict[str, str] | None = None, suspend: bool = False) -> WorkflowInfo:
    return WorkflowInfo(
        namespace="ns",
        name="one-off",
        at=at,
        suspend=suspend,
        status={"lastTriggered": fired or {}},
    )


def test_keys_and_names_are_stable_and_in_utc() -> None:
    local = T.astimezone(timezone(timedelta(hours=2)))
    assert at_key(local) == at_key(T) == "at:2026-06-01T12:00:00Z"
    assert run_name("one-off", local) == run_name("one-off", T) == "one-off-at-20260601-120000"
    assert run_name("one-off", T.replace(microsecond=5)) == "one-off-at-20260601-120000-000005"
    assert len(run_name("w" * 300, T)) <= 253


def test_future_times_wait_due_times_fire() -> None:
    plan = plan_at(wf(T + timedelta(seconds=20), T - timedelta(hours=1), T), T)
    assert plan.fire == [T - timedelta(hours=1), T]  # a past time fires at once
    assert plan.pending == [T + timedelta(seconds=20)]


def test_a_recorded_time_never_fires_again() -> None:
    fired = {at_key(T): "one-off-at-20260601-120000"}
    plan = plan_at(wf(T, fired=fired), T + timedelta(days=1))
    assert plan.fire == [] and plan.pending == []


def test_duplicates_fire_once() -> None:
    assert plan_at(wf(T, T, T.astimezone(timezone(timedelta(hours=-5)))), T).fire == [T]


def test_nothing_fires_or_waits_while_suspended() -> None:
    plan = plan_at(wf(T, T + timedelta(hours=1), suspend=True), T)
    assert plan.fire == [] and plan.pending == []


def test_the_run_waits_for_its_time_and_says_where_it_came_from() -> None:
    run = at_run(wf(T), T)
    assert run["metadata"]["name"] == "one-off-at-20260601-120000"
    assert run["spec"]["scheduledAt"] == "2026-06-01T12:00:00Z"
    assert run["spec"]["triggeredBy"] == {
        "type": "Schedule",
        "source": "spec.triggers.at 2026-06-01T12:00:00Z",
    }
    assert run["metadata"]["annotations"]["kubehatch.dev/trigger"] == at_key(T)
    assert run["metadata"]["labels"]["kubehatch.dev/trigger-type"] == "schedule"
