"""Middleware: functions wrapped around every step, ``mw(ctx, next) -> output``.

A middleware calls ``next(ctx)`` to run the rest of the chain (the next middleware
or the step) and returns its result, or its own; it may pass a new context made with
``ctx.with_value(...)``, catch and wrap errors, or not call ``next`` at all. Worker
middleware wraps service middleware, which wraps the step.

Sync and async middleware and steps mix freely. The chain runs on an event loop:
async callables are awaited; each sync callable runs in a thread of its own and gets
a blocking ``next``, so a sync middleware never blocks the loop that runs the async
parts. Threads are per call (not a pool) so that nested sync middleware cannot
exhaust a pool and deadlock.

A chain with nothing async in it (the common step) needs no event loop: :func:`run_sync_chain`
runs it in the same threads, the caller blocking where the loop would wait, and asyncio (a
large import, paid in every step pod) is loaded only for a chain that awaits something.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from kubehatch._signatures import is_async_callable
from kubehatch.context import Context

Next: TypeAlias = Callable[[Context], Any]
"""What a middleware calls to continue: returns the output (awaitable for async ones)."""
Middleware: TypeAlias = Callable[[Context, Next], Any]
"""``mw(ctx, next)``, sync or async."""
StepFunction: TypeAlias = Callable[[Context], Any]


async def in_thread(func: Callable[..., Any], *args: Any) -> Any:
    """Run ``func(*args)`` in a new daemon thread and await its result.

    A daemon thread: if the step is abandoned (timeout, cancellation) the process can
    still exit.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result = context.run(func, *args)
        except BaseException as error:  # handed to the awaiting task, even SystemExit
            outcome: tuple[Any, BaseException | None] = (None, error)
        else:
            outcome = (result, None)
        # A closed loop: the step was abandoned (timeout, cancellation); nobody awaits it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name="kubehatch-step", daemon=True).start()
    return await future


async def call_step(func: StepFunction, ctx: Context) -> Any:
    """Call a step function, awaiting it if async, in a thread if not."""
    if is_async_callable(func):
        return await func(ctx)
    return await in_thread(func, ctx)


async def run_chain(middleware: Sequence[Middleware], step: StepFunction, ctx: Context) -> Any:
    """Run ``step`` wrapped by ``middleware`` (the first one outermost)."""
    import asyncio

    loop = asyncio.get_running_loop()

    async def run_from(index: int, current: Context) -> Any:
        if not isinstance(current, Context):
            raise TypeError(f"next() needs a Context, got {type(current).__name__}")
        if index == len(middleware):
            return await call_step(step, current)
        layer = middleware[index]
        if is_async_callable(layer):

            def next_async(ctx: Context) -> Awaitable[Any]:
                return run_from(index + 1, ctx)

            return await layer(current, next_async)

        def next_blocking(ctx: Context) -> Any:
            return asyncio.run_coroutine_threadsafe(run_from(index + 1, ctx), loop).result()

        return await in_thread(layer, current, next_blocking)

    return await run_from(0, ctx)


def is_sync_chain(middleware: Sequence[Middleware], step: StepFunction) -> bool:
    """Whether no part of the chain is async: :func:`run_sync_chain` can run it."""
    return not any(map(is_async_callable, [*middleware, step]))


def run_sync_chain(middleware: Sequence[Middleware], step: StepFunction, ctx: Context) -> Any:
    """:func:`run_chain` for a chain of sync callables alone, without an event loop.

    The same threads as on a loop: each callable in a new daemon thread, in a copy of the
    caller's context, and ``next`` blocking its caller until the rest of the chain is done.
    """

    def run_from(index: int, current: Context) -> Any:
        if not isinstance(current, Context):
            raise TypeError(f"next() needs a Context, got {type(current).__name__}")
        if index == len(middleware):
            return in_thread_blocking(step, current)
        return in_thread_blocking(middleware[index], current, lambda ctx: run_from(index + 1, ctx))

    return run_from(0, ctx)


def in_thread_blocking(func: Callable[..., Any], *args: Any) -> Any:
    """:func:`in_thread` for a caller without an event loop: it blocks until ``func`` is done.

    The wait is a lock's: a signal handler's exception (the step's timeout) still interrupts
    it, leaving the daemon thread behind as an abandoned step's is on a loop.
    """
    context = contextvars.copy_context()
    done = threading.Lock()
    done.acquire()
    outcome: list[tuple[Any, BaseException | None]] = []

    def target() -> None:
        try:
            outcome.append((context.run(func, *args), None))
        except BaseException as error:  # handed to the waiting caller, even SystemExit
            outcome.append((None, error))
        finally:
            done.release()

    threading.Thread(target=target, name="kubehatch-step", daemon=True).start()
    done.acquire()
    result, error = outcome.pop()
    if error is None:
        return result
    try:
        raise error
    finally:
        del error  # no cycle through this frame
