"""Watches the operator follows itself, beside kopf's: many objects, little kept of each.

kopf remembers every object it has seen and gives each one a task of its own. Step Jobs
(one per step attempt, kept as long as their run) and step outputs outnumber runs many
times over, and the store keeps only a small `Attempt` per Job; so these two kinds are
streamed here instead: one daemon thread per watched namespace (or one for all), which
resumes from the last resourceVersion it saw (bookmarks keep it fresh) and hands each
event to the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)

WATCH_SECONDS = 300
"""How long one watch request lasts before it is renewed from its last resourceVersion."""

Scope = str | None
"""A namespace, or None for all namespaces."""


def scopes(namespaces: tuple[str, ...]) -> list[Scope]:
    """Exact namespaces one by one (namespaced RBAC grants nothing more); with a glob or
    none at all, every namespace (the store ignores what it does not follow)."""
    exact = [n for n in namespaces if not set(n) & set("*?[]!")]
    return list(exact) if exact and len(exact) == len(namespaces) else [None]


class Expired(Exception):
    """410 Gone: the resourceVersion is older than the API server keeps."""


@dataclass
class Feed:
    """What to watch, and what to do with it."""

    what: str
    """For the log: "step Jobs"."""
    request: Callable[[Scope, dict[str, Any]], Any]
    """The client's list call for a scope, given the watch options; returns the raw
    response (the options ask for no preloading)."""
    selector: str
    observe: Callable[[str, dict[str, Any]], None]
    """Called on the event loop with each event's type and object."""
    resume: Callable[[Scope, str | None], str]
    """In the watch's thread: the resourceVersion to (re)start from, given the last one
    seen (None when it expired or nothing was seen yet)."""
    headers: dict[str, str] = field(default_factory=dict)


class Follower:
    def __init__(self, feed: Feed, namespaces: tuple[str, ...]) -> None:
        self.feed = feed
        self.scopes = scopes(namespaces)
        self.stopped = threading.Event()

    def start(self, since: str | None = None) -> None:
        """Follow from resourceVersion ``since`` (or wherever `Feed.resume` says)."""
        loop = asyncio.get_running_loop()
        for scope in self.scopes:
            threading.Thread(
                target=self._follow, args=(scope, loop, since), daemon=True,
                name=f"{self.feed.what.replace(' ', '-')}-{scope or 'all'}",
            ).start()  # fmt: skip

    def stop(self) -> None:
        self.stopped.set()

    def _follow(self, scope: Scope, loop: asyncio.AbstractEventLoop, since: str | None) -> None:
        feed, delay, version = self.feed, 1.0, since
        while not self.stopped.is_set():
            try:
                version = version or feed.resume(scope, None)
                for kind, obj in self._events(scope, version):
                    delay = 1.0
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        loop.call_soon_threadsafe(feed.observe, kind, obj)
            except Expired:
                version = None  # too old to resume from
            except Exception as err:
                log.warning("watching %s failed (%s); again in %.0fs", feed.what, err, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                try:
                    version = feed.resume(scope, version)
                except Exception as again:
                    log.warning("resuming the watch of %s failed (%s)", feed.what, again)
                    version = None

    def _events(self, scope: Scope, version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        options: dict[str, Any] = {
            "label_selector": self.feed.selector,
            "resource_version": version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": WATCH_SECONDS,
            "watch": True,
            "_preload_content": False,
            "_request_timeout": WATCH_SECONDS + 30,
        }
        if self.feed.headers:
            options["_headers"] = self.feed.headers
        response = self.feed.request(scope, options)
        try:
            for line in iter_resp_lines(response):
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise Expired
                    raise RuntimeError(obj.get("message") or "watch error")
                yield str(event.get("type")), obj
                if self.stopped.is_set():
                    return
        finally:
            response.release_conn()
