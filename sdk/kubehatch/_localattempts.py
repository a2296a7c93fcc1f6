"""The attempts of one step in the local engine (:mod:`kubehatch._localrun`), as a step
pod makes them: retried after the backoff, cancelled past the timeout, ended Cancelled
when the step cancels itself.

One run of the step's action per attempt, with its own :class:`~kubehatch.context.Context`:

* a failed attempt is retried up to ``retries`` times (never after a ``PermanentError``),
  waiting the step's backoff (default 10s doubling up to 5m) on the clock;
* an attempt longer than the step's ``timeout`` is cancelled (``ctx.cancelled`` is set)
  and fails with :class:`~kubehatch.errors.StepTimeoutError` (TimedOut);
* an attempt whose code called ``ctx.cancel()`` ends the step Cancelled, whether it
  returned or raised, and is not retried (a step pod's exit code 4).

The phases and messages are the operator's for the same attempts (``steps.observe_step``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kubehatch._actions import ResolvedAction
from kubehatch._serialization import JSONValue
from kubehatch.api.workflow import Backoff, StepSpec
from kubehatch.api.workflowrun import StepPhase
from kubehatch.context import Context
from kubehatch.durations import parse_duration
from kubehatch.errors import PermanentError, StepTimeoutError

DEFAULT_BACKOFF = Backoff()
CANCEL_GRACE_SECONDS = 1.0
"""How long an attempt that timed out may take to stop once ``ctx.cancelled`` is set."""
SELF_CANCELLED = "cancelled by the step itself (ctx.cancel())"
"""What a step pod that cancelled itself says (the operator's message for the step)."""


class Clock(Protocol):
    """Where the engine reads the time and waits: the system's, or a fake one in tests."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real time; waiting blocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0))


@dataclass
class Ended:
    """How a step (or one item of a forEach step) ended."""

    phase: StepPhase
    attempt: int = 0
    output: JSONValue = None
    message: str | None = None
    error: BaseException | None = None


Emit = Callable[[str, int, str], None]
"""Hears each attempt begin ("Running") and each retry ("Retrying", with why): phase,
attempt, message."""


def run_attempts(
    action: ResolvedAction,
    step: StepSpec,
    context: Callable[[int], Context],
    clock: Clock,
    emit: Emit,
) -> Ended:
    """Run ``step``'s attempts to its end; ``context`` makes each attempt's context."""
    timeout = parse_duration(step.timeout).total_seconds() if step.timeout else None
    attempt = 0
    while True:
        attempt += 1
        emit("Running", attempt, "")
        ctx = context(attempt)
        try:
            output = asyncio.run(_attempt(action.run_async(ctx), ctx, timeout))
        except Exception as error:
            if ctx.cancelled_by_step:
                return Ended(StepPhase.CANCELLED, attempt, message=SELF_CANCELLED)
            timed_out = isinstance(error, StepTimeoutError)
            why = (
                f"exceeded the step timeout of {step.timeout}"
                if timed_out
                else f"failed: {describe(error)}"
            )
            if not isinstance(error, PermanentError) and attempt <= step.retries:
                delay = (step.backoff or DEFAULT_BACKOFF).delay(attempt)
                emit("Retrying", attempt, f"{describe(error)}; next in {delay}")
                clock.sleep(delay.total_seconds())
                continue
            after = f" after {attempt} attempts" if attempt > 1 else ""
            phase = StepPhase.TIMED_OUT if timed_out else StepPhase.FAILED
            return Ended(phase, attempt, message=f"{why}{after}", error=error)
        if ctx.cancelled_by_step:
            return Ended(StepPhase.CANCELLED, attempt, message=SELF_CANCELLED)
        return Ended(StepPhase.SUCCEEDED, attempt, output)


async def _attempt(work: Any, ctx: Context, timeout: float | None) -> JSONValue:
    """One attempt, cancelled (``ctx.cancelled`` set) when it outlasts ``timeout`` seconds."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        ctx.cancelled.set()  # a sync step in its thread sees it; an async one is cancelled too
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE_SECONDS)  # as a pod's grace period
        raise StepTimeoutError(
            f"step {ctx.step_name!r} exceeded its timeout of {timedelta(seconds=timeout or 0)}"
        ) from None


def describe(error: BaseException) -> str:
    """``Type: message``, as a step pod reports a failure."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
