"""A watch of step outputs: the earliest trustworthy sign that a step succeeded.

A step pod writes its output ConfigMap as its last act, after the step's code returned.
The Job says the same thing about two seconds later (the kubelet reports the container's
exit, then the Job controller batches pod updates before it sets a condition), so
children start from the output and the Job's condition only confirms it.

The watch asks for metadata only (PartialObjectMetadata: no output data crosses the wire),
server-side filtered to step outputs, from a fresh resourceVersion (past outputs are of
no use: the Jobs of finished steps say they finished). Anything it misses, the Jobs'
conditions still carry, so errors only cost speed: it reconnects with a backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

from kubehatch.api import wire

log = logging.getLogger(__name__)

SELECTOR = f"{wire.LABEL_MANAGED_BY}={wire.MANAGED_BY},{wire.LABEL_STEP},{wire.LABEL_ATTEMPT}"
"""Step outputs: the run's input ConfigMap has no step label."""

METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
WATCH_SECONDS = 300
"""How long one watch request lasts before it is renewed from its last resourceVersion."""

Observe = Callable[[dict[str, Any]], None]
"""Called on the event loop with the metadata of each output ConfigMap that appears."""


class OutputWatch:
    """One daemon thread per watched namespace (or one for all), feeding the event loop."""

    def __init__(self, api: client.ApiClient, namespaces: tuple[str, ...]) -> None:
        self.core = client.CoreV1Api(api)
        exact = [n for n in namespaces if not set(n) & set("*?[]!")]
        # Globs are watched cluster-wide; the store ignores runs it does not know.
        self.scopes: list[str | None] = (
            list(exact) if exact and len(exact) == len(namespaces) else [None]
        )
        self.stopped = threading.Event()

    def start(self, observe: Observe) -> None:
        loop = asyncio.get_running_loop()
        for scope in self.scopes:
            threading.Thread(
                target=self._follow, args=(scope, loop, observe), daemon=True,
                name=f"outputs-{scope or 'all'}",
            ).start()  # fmt: skip

    def stop(self) -> None:
        self.stopped.set()

    def _follow(self, scope: str | None, loop: asyncio.AbstractEventLoop, observe: Observe) -> None:
        delay = 1.0
        version: str | None = None
        while not self.stopped.is_set():
            try:
                version = version or self._now(scope)
                for event in self._events(scope, version):
                    delay = 1.0
                    meta = (event.get("object") or {}).get("metadata") or {}
                    if meta.get("resourceVersion"):
                        version = meta["resourceVersion"]
                    if event.get("type") == "ADDED":
                        loop.call_soon_threadsafe(observe, meta)
            except _Expired:
                version = None  # too old to resume: start from now (the Jobs cover the gap)
            except Exception as err:
                log.warning("watching step outputs failed (%s); again in %.0fs", err, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                version = None

    def _now(self, scope: str | None) -> str:
        """The current resourceVersion, from a list of at most one object."""
        options: dict[str, Any] = {"label_selector": SELECTOR, "limit": 1}
        if scope is None:
            listed = self.core.list_config_map_for_all_namespaces(**options)
        else:
            listed = self.core.list_namespaced_config_map(scope, **options)
        return str(listed.metadata.resource_version) if listed.metadata else ""

    def _events(self, scope: str | None, version: str) -> Iterator[dict[str, Any]]:
        options: dict[str, Any] = {
            "label_selector": SELECTOR,
            "resource_version": version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": WATCH_SECONDS,
            "watch": True,
            "_preload_content": False,
            "_headers": {"Accept": METADATA_ONLY},
            "_request_timeout": WATCH_SECONDS + 30,
        }
        # Without preloading, the client hands back the raw HTTP response to stream from.
        response: Any
        if scope is None:
            response = self.core.list_config_map_for_all_namespaces(**options)
        else:
            response = self.core.list_namespaced_config_map(scope, **options)
        try:
            for line in iter_resp_lines(response):
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    if status.get("code") == 410:
                        raise _Expired
                    raise RuntimeError(status.get("message") or "watch error")
                yield event
                if self.stopped.is_set():
                    return
        finally:
            response.release_conn()


class _Expired(Exception):
    """410 Gone: the resourceVersion is older than the API server keeps."""
