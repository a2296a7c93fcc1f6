"""The worker's API calls on WorkerTasks, and the thread that watches its pool's tasks.

Every call goes through :class:`TaskApi` and raises one of the errors below, so the loop
can be tested with a fake that records patches and raises Conflict, and decides by kind
of failure, not by HTTP details.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Protocol, TypeVar

from kubehatch._apierrors import status_message
from kubehatch._pool.events import Event, Fatal, Listed, Watched
from kubehatch.api import wire

WATCH_SECONDS = 240
"""A watch request's server-side timeout; the watch then resumes where it was."""
CALL_TIMEOUT = (5.0, 15.0)
"""(connect, read) seconds of one call: a hung connection must not hold a claim."""
DELAYS = (0.2, 0.5, 1.0, 2.0)
"""Waits between tries of a call that failed for a passing reason (429, 5xx, network)."""

T = TypeVar("T")


class ApiError(Exception):
    """A call failed; the subclass says how."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Conflict(ApiError):
    """409: the precondition failed (someone wrote the task since we read it)."""


class NotFound(ApiError):
    """404: the task is gone (deleted), or the kind is not installed."""


class Expired(ApiError):
    """410: the watch's resourceVersion is too old: list again."""


class Refused(ApiError):
    """Any other 4xx (403 from RBAC or the admission policy, 422): trying again won't help."""


class Unavailable(ApiError):
    """429, 5xx or no answer: worth trying again."""


def translate(error: BaseException) -> ApiError:
    """An exception of the client (or the network) as one of ours."""
    if isinstance(error, ApiError):
        return error
    status = getattr(error, "status", None)
    if not isinstance(status, int) or status == 0:
        return Unavailable(f"no answer from the API server: {error}")
    message = f"{status} {status_message(error if isinstance(error, Exception) else Exception())}"
    kind: type[ApiError]
    if status == 409:
        kind = Conflict
    elif status == 404:
        kind = NotFound
    elif status == 410:
        kind = Expired
    elif status == 429 or status >= 500:
        kind = Unavailable
    else:
        kind = Refused
    return kind(message, status)


def retrying(
    call: Callable[[], T],
    delays: tuple[float, ...] = DELAYS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, tried again after each of ``delays`` while it fails with Unavailable."""
    for delay in delays:
        try:
            return call()
        except Unavailable:
            sleep(delay)
    return call()


def write_while_ours(
    tasks: Tasks,
    name: str,
    version: str,
    body_of: Callable[[str], dict[str, Any]],
    owns: Callable[[dict[str, Any]], bool],
    delays: tuple[float, ...] = DELAYS,
) -> dict[str, Any] | None:
    """Patch ``body_of(version)`` into the task's status; on a 409, read the task again:
    while ``owns`` it, write again with its new resourceVersion, else give up (None: it
    is someone else's now, or it ended). Raises Unavailable if the conflicts go on."""
    for _ in range(3):
        try:
            return retrying(partial(tasks.patch_status, name, body_of(version)), delays)
        except Conflict:
            task = tasks.get(name)
            if not owns(task):
                return None
            version = str(wire.mapping(task.get("metadata")).get("resourceVersion", ""))
    raise Unavailable(f"{name} kept changing under this worker's writes")


class Tasks(Protocol):
    """What the worker does with WorkerTasks (the real one below; tests use a fake)."""

    def list(self) -> tuple[list[dict[str, Any]], str]: ...
    def watch(self, version: str) -> Iterator[tuple[str, dict[str, Any]]]: ...
    def get(self, name: str) -> dict[str, Any]: ...
    def patch_status(self, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


class TaskApi:
    """WorkerTasks of one pool in one namespace, through the kubernetes client."""

    def __init__(self, api_client: Any, namespace: str, pool: str) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.selector = f"spec.pool={pool}"
        self._where = (wire.GROUP, wire.VERSION, namespace, wire.WORKER_TASKS)

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            found = method(*self._where, *args, _request_timeout=CALL_TIMEOUT, **kwargs)
        except Exception as err:
            raise translate(err) from err
        return wire.mapping(found)

    def list(self) -> tuple[list[dict[str, Any]], str]:
        """The pool's tasks and the resourceVersion to watch from."""
        found = self._call(self.custom.list_namespaced_custom_object, field_selector=self.selector)
        version = str(wire.mapping(found.get("metadata")).get("resourceVersion", ""))
        return list(found.get("items") or []), version

    def watch(self, version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, task) from ``version`` on, for up to WATCH_SECONDS; BOOKMARK events
        carry only the resourceVersion to resume from. Raises Expired on 410."""
        from kubernetes import watch

        stream = watch.Watch().stream(
            self.custom.list_namespaced_custom_object,
            *self._where,
            field_selector=self.selector,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=(CALL_TIMEOUT[0], WATCH_SECONDS + 30),
        )
        try:
            for event in stream:
                yield str(event.get("type", "")), wire.mapping(event.get("raw_object"))
        except Exception as err:
            raise translate(err) from err

    def get(self, name: str) -> dict[str, Any]:
        return self._call(self.custom.get_namespaced_custom_object, name)

    def patch_status(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of the status subresource; a metadata.resourceVersion in ``body``
        is a precondition (Conflict when the task changed since)."""
        return self._call(self.custom.patch_namespaced_custom_object_status, name, body)


def follow(
    tasks: Tasks,
    post: Callable[[Event], None],
    stopped: threading.Event,
    say: Callable[[str], None],
    where: str,
) -> None:
    """List, then watch from the listing's resourceVersion, for as long as the worker
    runs: a watch that ends resumes where it was, an expired one (410) lists again.

    A first listing the cluster refuses is Fatal (the kind is not installed, the worker
    may not read tasks): nothing would ever be claimed. Later failures are retried.
    """
    version: str | None = None
    failures = 0
    listed_once = False
    while not stopped.is_set():
        try:
            if version is None:
                items, version = tasks.list()
                post(Listed(items))
                listed_once = True
            for kind, task in tasks.watch(version):
                if stopped.is_set():
                    return
                version = str(wire.mapping(task.get("metadata")).get("resourceVersion") or version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    post(Watched(kind, task))
            failures = 0
        except Expired:
            version = None
        except (NotFound, Refused) as err:
            if not listed_once:
                post(Fatal(_cannot_list(err, where)))
                return
            failures += 1
            say(f"watching tasks failed: {err}; trying again")
            version = None
        except Exception as err:  # Unavailable, or a broken stream
            failures += 1
            say(f"watching tasks failed: {err}; trying again")
        if failures:
            stopped.wait(min(2.0 ** min(failures, 5) * 0.25, 8.0))


def _cannot_list(error: ApiError, where: str) -> str:
    if isinstance(error, NotFound):
        return (
            f"cannot list WorkerTasks in {where}: the kind is not installed on this cluster "
            "(no workertasks.kubehatch.dev); install or upgrade the kubehatch chart"
        )
    return (
        f"cannot list WorkerTasks in {where} ({error}); run the worker with the chart's worker "
        "ServiceAccount, or with a kubeconfig that may list, watch and patch workertasks"
    )
