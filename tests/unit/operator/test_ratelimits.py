"""Rate limits: a sliding log of units, attempts that wait their turn, and its rebuild
from the Jobs that took units (what a restarted operator sees)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kubehatch.api import wire
from kubehatch.api.workflow import RateLimitSpec, WorkflowSpec
from kubehatch.api.workflowrun import StepPhase, WorkflowRunSpec, WorkflowRunStatus
from kubehatch_operator.decisions import decide
from kubehatch_operator.jobs import step_job
from kubehatch_operator.model import Attempt, AttemptState, Run
from kubehatch_operator.ratelimits import Hold, RateGate, RateLog, Refused, free_at
from kubehatch_operator.settings import StepSettings

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TEN = timedelta(seconds=10)


def spec(*limits: dict, steps: int = 1) -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {
            "image": "img:1",
            "service": "svc",
            "steps": [
                {"name": f"s{i}", "action": "a", "rateLimits": list(limits)} for i in range(steps)
            ],
        }
    )


def run(name: str = "r1", **input: object) -> Run:
    return Run(
        name,
        1,
        WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}, "input": input}),
        WorkflowRunStatus(),
    )


TWO_PER_TEN = {"key": "api", "limit": 2, "duration": "10s"}


def test_units_fit_until_the_window_is_full_then_free_as_the_oldest_leave_it() -> None:
    assert free_at([], 1, 2, TEN) is None
    used = [(T0, 1), (T0 + timedelta(seconds=3), 1)]
    assert free_at(used, 1, 2, TEN) == T0 + TEN
    assert free_at(used, 2, 2, TEN) == T0 + timedelta(seconds=13)
    assert free_at([(T0, 1)], 1, 2, TEN) is None


def test_a_gate_takes_units_and_then_holds_saying_until_when() -> None:
    log = RateLog()
    gate = RateGate(log, "ns")
    step = spec(TWO_PER_TEN).steps[0]
    assert gate.take(run(), step, "j1", T0) == [("api", 1)]
    assert gate.take(run(), step, "j2", T0 + timedelta(seconds=1)) == [("api", 1)]
    held = gate.take(run(), step, "j3", T0 + timedelta(seconds=2))
    assert isinstance(held, Hold) and held.until == T0 + TEN
    assert "rate limit 'api' (2 unit(s) per 10s" in held.message
    assert gate.take(run(), step, "j3", T0 + TEN) == [("api", 1)]
    # Another namespace has buckets of its own.
    assert RateGate(log, "other").take(run(), step, "j4", T0) == [("api", 1)]


def test_every_limit_of_a_step_must_fit_and_nothing_is_taken_otherwise() -> None:
    log = RateLog()
    gate = RateGate(log, "ns")
    tight = {"key": "tight", "limit": 1, "duration": "1m"}
    step = spec(TWO_PER_TEN, tight).steps[0]
    assert gate.take(run(), step, "j1", T0) == [("api", 1), ("tight", 1)]
    held = gate.take(run(), step, "j2", T0)
    assert isinstance(held, Hold) and held.until == T0 + timedelta(minutes=1)
    assert len(log.used(("ns", "api"), TEN, T0)) == 1  # the held attempt took nothing


def test_dynamic_keys_give_each_user_a_limit_and_a_bad_expression_refuses() -> None:
    gate = RateGate(RateLog(), "ns")
    step = spec({"keyExpression": "input.user", "limit": 1, "duration": "1m"}).steps[0]
    assert gate.take(run(user="ada"), step, "j1", T0) == [("ada", 1)]
    assert gate.take(run(user="bob"), step, "j2", T0) == [("bob", 1)]
    assert isinstance(gate.take(run(user="ada"), step, "j3", T0), Hold)
    refused = gate.take(run(), step, "j4", T0)
    assert isinstance(refused, Refused) and "keyExpression 'input.user' failed" in refused.message


def test_the_log_is_rebuilt_from_the_jobs_that_took_units() -> None:
    now = datetime.now(UTC)  # Jobs older than a day are not counted
    workflow = spec(TWO_PER_TEN)
    from kubehatch_operator.model import StartAttempt

    start = StartAttempt(workflow.steps[0], 1, "r1-s0-1", {}, rate_limits=(("api", 1),))
    body = step_job(
        namespace="ns", workflow="wf", run="r1", run_uid="u", spec=workflow, start=start,
        settings=StepSettings(),
    )  # fmt: skip
    assert json.loads(body["metadata"]["annotations"][wire.ANNOTATION_RATE_LIMITS]) == [["api", 1]]
    body["metadata"]["creationTimestamp"] = now.isoformat()
    restarted = RateLog()
    restarted.observe_job(body)
    restarted.observe_job(body)  # listed again, or watched: counted once
    second = {**body, "metadata": {**body["metadata"], "name": "r2-s0-1"}}
    restarted.observe_job(second)
    held = RateGate(restarted, "ns").take(run(), workflow.steps[0], "r3-s0-1", now)
    assert isinstance(held, Hold) and held.until == now + TEN
    # Jobs without the annotation, or with one edited into nonsense, take nothing.
    restarted.observe_job({"metadata": {"name": "x", "namespace": "ns"}})
    broken = {**body, "metadata": {**body["metadata"], "name": "y", "annotations": {
        wire.ANNOTATION_RATE_LIMITS: "nonsense"}}}  # fmt: skip
    restarted.observe_job(broken)
    assert len(restarted.used(("ns", "api"), TEN, now + timedelta(seconds=1))) == 2
    # A Job created more than a day ago counts for no window.
    old = {
        **body,
        "metadata": {
            **body["metadata"],
            "name": "old",
            "creationTimestamp": (now - timedelta(hours=25)).isoformat(),
        },
    }
    restarted.observe_job(old)
    assert len(restarted.used(("ns", "api"), timedelta(hours=24), now)) == 2


def test_units_older_than_a_day_are_dropped() -> None:
    log = RateLog()
    log.record("ns", "j1", T0, [("api", 1)])
    assert log.used(("ns", "api"), timedelta(hours=24), T0 + timedelta(hours=25)) == []
    assert log.buckets() == 0


def test_a_held_first_attempt_stays_pending_and_wakes_the_run_when_a_unit_frees() -> None:
    gate = RateGate(RateLog(), "ns")
    workflow = spec(TWO_PER_TEN, steps=3)  # three independent steps, two units per 10 s
    decision = decide(run(), workflow, [], T0, None, gate)
    started = [s.step.name for s in decision.start]
    assert started == ["s0", "s1"]
    waiting = decision.status.steps["s2"]
    assert waiting.phase is StepPhase.PENDING and waiting.attempts == 0
    assert waiting.message is not None and "rate limit 'api'" in waiting.message
    assert decision.wake_at == T0 + TEN
    assert [s.rate_limits for s in decision.start] == [(("api", 1),), (("api", 1),)]


def test_a_retry_over_the_limit_waits_as_retrying_until_a_unit_frees() -> None:
    gate = RateGate(RateLog(), "ns")
    workflow = WorkflowSpec.model_validate(
        {
            "image": "img:1",
            "service": "svc",
            "steps": [
                {"name": "s0", "action": "a", "retries": 1, "backoff": {"initial": "1s"},
                 "rateLimits": [{"key": "api", "limit": 1, "duration": "1m"}]},
            ],
        }
    )  # fmt: skip
    first = decide(run(), workflow, [], T0, None, gate)
    assert [s.step.name for s in first.start] == ["s0"]
    job = first.start[0].job_name
    failed = Attempt("s0", 1, job, AttemptState.FAILED, T0, T0 + timedelta(seconds=1))
    later = Run("r1", 1, run().spec, first.status)
    retry = decide(later, workflow, [failed], T0 + timedelta(seconds=5), None, gate)
    status = retry.status.steps["s0"]
    assert retry.start == []
    assert status.phase is StepPhase.RETRYING and status.next_attempt_at == T0 + timedelta(
        minutes=1
    )
    assert "attempt 2 waiting for rate limit 'api'" in (status.message or "")


def test_a_lost_job_is_made_again_without_taking_units_twice() -> None:
    log = RateLog()
    gate = RateGate(log, "ns")
    workflow = spec({"key": "api", "limit": 1, "duration": "1m"})
    first = decide(run(), workflow, [], T0, None, gate)
    recorded = Run("r1", 1, run().spec, first.status)
    again = decide(recorded, workflow, [], T0 + timedelta(seconds=1), None, gate)
    assert [s.job_name for s in again.start] == [first.start[0].job_name]
    assert again.start[0].rate_limits == (("api", 1),)
    assert len(log.used(("ns", "api"), timedelta(minutes=1), T0 + timedelta(seconds=1))) == 1


def test_limits_that_could_never_be_met_are_refused_when_written() -> None:
    with pytest.raises(ValidationError, match=r"units \(3\) exceed limit \(2\)"):
        RateLimitSpec.model_validate({"key": "k", "units": 3, "limit": 2, "duration": "1s"})
    with pytest.raises(ValidationError, match="set exactly one of key"):
        RateLimitSpec.model_validate({"limit": 2, "duration": "1s"})
    with pytest.raises(ValidationError, match="longest window, 24h"):
        RateLimitSpec.model_validate({"key": "k", "limit": 2, "duration": "25h"})


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 5),
    window=st.integers(1, 30),
    units=st.lists(st.integers(1, 5), min_size=1, max_size=40),
    gaps=st.lists(st.integers(0, 7), min_size=40, max_size=40),
)
def test_no_window_ever_holds_more_than_the_limit(
    limit: int, window: int, units: list[int], gaps: list[int]
) -> None:
    """Attempts asking at random times, each retried when its hold says: in every window
    of the limit's length, the units taken never exceed the limit, and no attempt waits
    longer than the limit requires."""
    log = RateLog()
    gate = RateGate(log, "ns")
    now = T0
    taken: list[tuple[datetime, int]] = []
    for index, (want, gap) in enumerate(zip(units, gaps, strict=False)):
        want = min(want, limit)
        step = spec({"key": "k", "units": want, "limit": limit, "duration": f"{window}s"}).steps[0]
        now += timedelta(seconds=gap)
        result = gate.take(run(), step, f"j{index}", now)
        if isinstance(result, Hold):
            assert result.until > now
            now = result.until  # the earliest moment it fits: it must fit then
            result = gate.take(run(), step, f"j{index}", now)
        assert result == [("k", want)]
        taken.append((now, want))
    span = timedelta(seconds=window)
    for start, _ in taken:
        inside = sum(u for at, u in taken if start <= at < start + span)
        assert inside <= limit


def test_a_freed_unit_goes_to_the_attempt_that_waited_longest() -> None:
    gate = RateGate(RateLog(), "ns")
    step = spec({"key": "api", "limit": 1, "duration": "10s"}).steps[0]
    assert gate.take(run(), step, "first", T0) == [("api", 1)]
    early = gate.take(run(), step, "early", T0 + timedelta(seconds=1))
    late = gate.take(run(), step, "late", T0 + timedelta(seconds=2))
    # Each is woken about when its turn comes: the later one a window after the first.
    assert isinstance(early, Hold) and early.until == T0 + TEN
    assert isinstance(late, Hold) and late.until == T0 + 2 * TEN
    # Woken early anyway (another event about its run), the later one steps back.
    stepped_back = gate.take(run(), step, "late", T0 + TEN)
    assert isinstance(stepped_back, Hold) and stepped_back.until == T0 + TEN + timedelta(seconds=1)
    assert "1 attempt(s) held earlier go first" in stepped_back.message
    assert gate.take(run(), step, "early", T0 + TEN) == [("api", 1)]
    again = gate.take(run(), step, "late", stepped_back.until)
    assert isinstance(again, Hold) and again.until == T0 + 2 * TEN
    assert gate.take(run(), step, "late", T0 + 2 * TEN) == [("api", 1)]


def test_many_waiters_are_woken_a_turn_at_a_time_not_all_at_every_unit() -> None:
    gate = RateGate(RateLog(), "ns")
    step = spec({"key": "api", "limit": 2, "duration": "10s"}).steps[0]
    gate.take(run(), step, "a", T0)
    gate.take(run(), step, "b", T0)
    holds = [gate.take(run(), step, f"w{i}", T0 + timedelta(seconds=1)) for i in range(6)]
    untils = [h.until - T0 for h in holds if isinstance(h, Hold)]
    assert untils == [TEN, TEN, 2 * TEN, 2 * TEN, 3 * TEN, 3 * TEN]


def test_an_attempt_behind_on_two_limits_keeps_its_place_on_both() -> None:
    """One time of first hold per attempt, not one per limit: two attempts never give way
    to each other on two limits for ever."""
    gate = RateGate(RateLog(), "ns")
    both = spec(
        {"key": "x", "limit": 1, "duration": "10s"}, {"key": "y", "limit": 1, "duration": "10s"}
    ).steps[0]
    gate.take(run(), both, "first", T0)
    a = gate.take(run(), both, "a", T0 + timedelta(seconds=1))
    b = gate.take(run(), both, "b", T0 + timedelta(seconds=2))
    assert isinstance(a, Hold) and isinstance(b, Hold)
    assert gate.take(run(), both, "a", a.until) == [("x", 1), ("y", 1)]


def test_an_attempt_that_stops_asking_is_not_waited_for() -> None:
    gate = RateGate(RateLog(), "ns")
    step = spec({"key": "api", "limit": 1, "duration": "10s"}).steps[0]
    gate.take(run(), step, "first", T0)
    gone = gate.take(run(), step, "gone", T0 + timedelta(seconds=1))  # its run is cancelled
    assert isinstance(gone, Hold)
    later = T0 + TEN + timedelta(seconds=6)  # past its turn and the grace
    assert gate.take(run(), step, "next", later) == [("api", 1)]


def test_a_sweep_forgets_old_units_and_waiters_that_stopped_asking() -> None:
    log = RateLog()
    gate = RateGate(log, "ns")
    step = spec({"keyExpression": "input.user", "limit": 1, "duration": "1m"}).steps[0]
    for user in ("ada", "bob"):
        gate.take(run(user=user), step, f"{user}-1", T0)
    held = gate.take(run(user="ada"), step, "ada-2", T0)  # then its run is cancelled
    assert isinstance(held, Hold) and len(log.waiters) == 1
    log.sweep(T0 + timedelta(hours=25))
    assert log.buckets() == 0 and len(log.waiters) == 0
