"""How the operator calls the official client: blocking calls in the thread pool, answers
left unread where only the effect matters, the API's "already there" and "gone" answers
as plain results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubehatch_operator.metrics import API_WRITES


class ForeignObjectError(Exception):
    """An object of the name we derive exists, and another owner made it."""


async def create_object(method: Callable[..., Any], body: dict[str, Any], resource: str) -> bool:
    """Create ``body``; False when an object of that name exists already."""
    API_WRITES.labels("create", resource).inc()
    try:
        await call(unread, method, body["metadata"]["namespace"], body)
    except ApiException as err:
        if err.status == 409:
            return False
        raise
    return True


async def ignoring(
    statuses: tuple[int, ...], method: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    try:
        await call(method, *args, **kwargs)
    except ApiException as err:
        if err.status not in statuses:
            raise


def unread(method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call for the effect only: the answer is not made into the client's typed model (for
    a Job, a tree of a hundred objects: milliseconds of CPU per step for nothing). Refusals
    still raise ApiException, with the API server's message."""
    response = method(*args, _preload_content=False, **kwargs)
    response.read()  # drained, so that its connection goes back to the pool
    response.release_conn()


async def call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking call of the client in the thread pool.

    Typed loosely on purpose: the client's stubs want its model classes where it
    accepts (and we pass) plain dicts.
    """
    return await asyncio.to_thread(method, *args, **kwargs)
