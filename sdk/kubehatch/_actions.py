"""Actions: registered step (and key) functions, and running them through middleware.

An action is addressed as "service:action", the string a Workflow's steps carry. The
step pod resolves it on the worker it imported and runs it::

    action = worker.resolve_action("user:send-email")
    output = action.run(Context(workflow_input=..., step_name="send-email", ...))

``invoke`` returns what the function returned; ``run`` also turns it into JSON data,
ready to be stored as the step's output. Both have ``*_async`` twins for callers that
already run an event loop; the sync forms are thin wrappers around them, except for a chain
with nothing async in it, which runs without a loop (and without importing asyncio, see
:mod:`kubehatch._middleware`).
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kubehatch._middleware import (
    Middleware,
    StepFunction,
    is_sync_chain,
    run_chain,
    run_sync_chain,
)
from kubehatch._serialization import JSONValue, to_jsonable
from kubehatch.context import Context
from kubehatch.errors import KubehatchError

T = TypeVar("T")


@dataclass(frozen=True)
class Action:
    """A function registered under "service:action"."""

    name: str
    func: StepFunction
    origin: str
    """Where it was registered, for conflict messages."""

    @property
    def service(self) -> str:
        return self.name.partition(":")[0]


@dataclass(frozen=True)
class ResolvedAction:
    """An action with the middleware that wraps it (worker's first, then the service's)."""

    action: Action
    middleware: tuple[Middleware, ...] = ()

    @property
    def name(self) -> str:
        return self.action.name

    async def invoke_async(self, ctx: Context) -> Any:
        """Run the function through the middleware; return its raw result."""
        return await run_chain(self.middleware, self.action.func, ctx)

    async def run_async(self, ctx: Context) -> JSONValue:
        """:meth:`invoke_async`, with the result converted to JSON data."""
        output = await self.invoke_async(ctx)
        return to_jsonable(output, what=f"output of action {self.name!r}")

    def invoke(self, ctx: Context) -> Any:
        """Sync form of :meth:`invoke_async` (not callable from a running event loop)."""
        if is_sync_chain(self.middleware, self.action.func):
            _refuse_in_running_loop()
            return run_sync_chain(self.middleware, self.action.func, ctx)
        return run_sync(self.invoke_async(ctx))

    def run(self, ctx: Context) -> JSONValue:
        """Sync form of :meth:`run_async` (not callable from a running event loop)."""
        if is_sync_chain(self.middleware, self.action.func):
            return to_jsonable(self.invoke(ctx), what=f"output of action {self.name!r}")
        return run_sync(self.run_async(ctx))


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a new event loop; refuse inside a running one (it would deadlock)."""
    try:
        _refuse_in_running_loop()
    except KubehatchError:
        coroutine.close()
        raise
    import asyncio

    return asyncio.run(coroutine)


def _refuse_in_running_loop() -> None:
    """Raise when called inside a running event loop (none can run before asyncio loads)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise KubehatchError(
        "called the sync form inside a running event loop; await the *_async form instead"
    )


class ActionResolver(Protocol):
    """What :func:`run_step` needs: anything with ``resolve_action``, like a Worker."""

    def resolve_action(self, name: str) -> ResolvedAction: ...


def run_step(worker: ActionResolver, action: str, ctx: Context) -> JSONValue:
    """Resolve ``action`` ("service:action") on ``worker`` and run it; returns JSON data."""
    return worker.resolve_action(action).run(ctx)


async def run_step_async(worker: ActionResolver, action: str, ctx: Context) -> JSONValue:
    """:func:`run_step` for callers inside an event loop."""
    return await worker.resolve_action(action).run_async(ctx)
