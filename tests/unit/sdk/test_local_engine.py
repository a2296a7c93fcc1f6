"""The local engine (kubehatch.testing, ``kubehatch run --local``) and its fake clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubehatch import (
    At,
    Backoff,
    Context,
    Cron,
    Fn,
    Next,
    PermanentError,
    StepTimeoutError,
    Worker,
    WorkflowJob,
)
from kubehatch.testing import (
    FakeClock,
    StepEvent,
    run_local,
    run_scheduled,
    run_workflow,
    trigger_times,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_retry_waits_its_backoff_on_the_fake_clock() -> None:
    worker = Worker("w", image="img:1")
    wf = worker.workflow("flaky")
    seen: list[tuple[int, datetime]] = []
    clock = FakeClock(T0)

    @wf.step(name="call", retries=3, backoff=Backoff(initial="30s", multiplier=2, max="1m"))
    def call(ctx: Context) -> int:
        seen.append((ctx.retry_count, clock.now()))
        if ctx.retry_count < 3:
            raise RuntimeError("busy")
        return ctx.retry_count

    started = time.monotonic()
    run = run_workflow(worker, "flaky", clock=clock)
    assert time.monotonic() - started < 2  # no real waiting
    assert run.outputs == {"call": 3} and run.attempts == {"call": 4}
    assert clock.sleeps == [30, 60, 60]  # 30s, doubled, capped at 1m
    assert [t - T0 for _, t in seen] == [
        timedelta(0),
        *(timedelta(seconds=s) for s in (30, 90, 150)),
    ]
    phases = [(e.phase, e.attempt) for e in run.events]
    assert phases == [
        ("Running", 1), ("Retrying", 1), ("Running", 2), ("Retrying", 2),
        ("Running", 3), ("Retrying", 3), ("Running", 4), ("Succeeded", 4),
    ]  # fmt: skip


def test_the_default_backoff_is_the_operators() -> None:
    worker = Worker("w", image="img:1")
    worker.register_workflow(
        WorkflowJob(name="wf", steps=[Fn(_always_fails).set_name("s").set_retries(3)])
    )
    clock = FakeClock(T0)
    run = run_local(worker, "wf", clock=clock)
    assert run.phase == "Failed" and run.phases == {"s": "Failed"}
    assert clock.sleeps == [10, 20, 40]
    assert run.message == "step s failed: RuntimeError: always after 4 attempts"  # as on a cluster


def _always_fails(ctx: Context) -> None:
    raise RuntimeError("always")


def test_middleware_wraps_in_order_worker_then_service() -> None:
    calls: list[str] = []

    def outer(ctx: Context, next: Next) -> Any:
        calls.append("worker:before")
        result = next(ctx.with_value("who", "worker"))
        calls.append("worker:after")
        return result

    async def inner(ctx: Context, next: Any) -> Any:
        calls.append(f"service:before ({ctx.value('who')})")
        result = await next(ctx)
        calls.append("service:after")
        return {**result, "wrapped": True}

    worker = Worker("w", image="img:1").use(outer)
    service = worker.new_service("svc").use(inner)
    wf = service.workflow("mw")

    @wf.step(name="step")
    def step(ctx: Context) -> dict[str, Any]:
        calls.append("step")
        return {"who": ctx.value("who")}

    run = run_workflow(worker, "mw")
    assert run.outputs == {"step": {"who": "worker", "wrapped": True}}
    assert calls == [
        "worker:before", "service:before (worker)", "step", "service:after", "worker:after"
    ]  # fmt: skip


def test_a_failed_branch_skips_its_children_and_the_others_run_on() -> None:
    worker = Worker("w", image="img:1")
    wf = worker.workflow("branches")
    order: list[str] = []

    @wf.step(name="boom")
    def boom(ctx: Context) -> None:
        order.append("boom")
        raise PermanentError("no")

    @wf.step(name="after-boom", parents=[boom])
    def after_boom(ctx: Context) -> None:
        order.append("after-boom")

    @wf.step(name="fine")
    def fine(ctx: Context) -> int:
        order.append("fine")
        return 1

    @wf.on_failure(name="cleanup")
    def cleanup(ctx: Context) -> dict[str, str]:
        return ctx.step_run_errors()

    events: list[StepEvent] = []
    run = run_local(worker, "branches", clock=FakeClock(), on_event=events.append)
    assert order == ["boom", "fine"]
    assert run.phases == {
        "boom": "Failed", "after-boom": "Skipped", "fine": "Succeeded", "cleanup": "Succeeded"
    }  # fmt: skip
    assert run.outputs["cleanup"] == {"boom": "failed: PermanentError: no"}  # its status message
    assert run.phase == "Failed" and run.message == "step boom failed: PermanentError: no"
    assert events == run.events
    skipped = next(e for e in events if e.step == "after-boom")
    assert skipped.message == "not run: parent boom failed"
    with pytest.raises(PermanentError) as caught:
        run_workflow(worker, "branches")
    assert caught.value.__notes__ == ["in step 'boom' of workflow 'branches'"]


def test_fail_fast_skips_the_rest() -> None:
    worker = Worker("w", image="img:1")
    wf = worker.workflow("ff", fail_fast=True)
    wf.step(name="a")(_always_fails)
    wf.step(name="b")(lambda ctx: 1)
    run = run_local(worker, "ff", clock=FakeClock())
    assert run.phases == {"a": "Failed", "b": "Skipped"}


def test_a_step_over_its_timeout_is_cancelled_and_retried() -> None:
    worker = Worker("w", image="img:1")
    wf = worker.workflow("slow")
    cancelled: list[bool] = []

    @wf.step(name="sync-slow", timeout="1s", retries=1, backoff=Backoff(initial="1s"))
    def sync_slow(ctx: Context) -> None:
        cancelled.append(ctx.wait_for_cancel(5))

    @wf.step(name="async-slow", timeout="1s")
    async def async_slow(ctx: Context) -> None:
        await asyncio.sleep(5)

    started = time.monotonic()
    run = run_local(worker, "slow", clock=FakeClock())
    assert time.monotonic() - started < 4.5
    assert run.phases == {"sync-slow": "TimedOut", "async-slow": "TimedOut"}
    assert run.attempts["sync-slow"] == 2
    assert isinstance(run.errors["async-slow"], StepTimeoutError)
    time.sleep(0.1)
    assert cancelled == [True, True]  # each attempt saw ctx.cancelled


def test_the_runs_timeout_skips_what_has_not_started() -> None:
    worker = Worker("w", image="img:1")
    wf = worker.workflow("bounded", timeout="1m")
    clock = FakeClock(T0)

    @wf.step(name="long")
    def long(ctx: Context) -> None:
        clock.advance("2m")

    wf.step(name="next", parents=[long])(lambda ctx: None)
    run = run_local(worker, "bounded", clock=clock)
    assert run.phase == "TimedOut" and run.phases == {"long": "Succeeded", "next": "Skipped"}


def test_crons_and_at_times_run_in_fake_time() -> None:
    worker = Worker("w", image="img:1")
    at = T0 + timedelta(minutes=7)
    wf = worker.workflow("every-five", on=[Cron("*/5 * * * *"), At(at)])
    wf.step(name="tick")(lambda ctx: ctx.run_name)
    off = worker.workflow("off", on=Cron("* * * * *"), suspend=True)
    off.step(name="tick")(lambda ctx: None)
    clock = FakeClock(T0)
    until = T0 + timedelta(minutes=15)
    assert trigger_times(worker, "every-five", T0, until) == [
        T0 + timedelta(minutes=5), at, T0 + timedelta(minutes=10), until
    ]  # fmt: skip
    started = time.monotonic()
    runs = run_scheduled(worker, clock, until)
    assert time.monotonic() - started < 2
    assert [moment - T0 for moment, _ in runs] == [timedelta(minutes=m) for m in (5, 7, 10, 15)]
    assert all(run.succeeded and run.workflow == "every-five" for _, run in runs)
    assert runs[0][1].outputs == {
        "tick": f"every-five-{int((T0 + timedelta(minutes=5)).timestamp())}"
    }
    assert clock.now() == until


def test_the_fake_clock() -> None:
    clock = FakeClock(T0)
    assert clock.advance("90s") == T0 + timedelta(seconds=90)
    clock.sleep(10)
    assert clock.now() == T0 + timedelta(seconds=100) and clock.sleeps == [10]
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2030, 1, 1))
