"""A keyed work queue: work on one key runs one at a time, and kicks coalesce.

Every controller of the operator (runs, workflow triggers, events) turns watch events
and timers into ``kick(key)``. The work for a key never runs twice at once; kicks that
arrive while it runs fold into exactly one more pass. The work returns when to run
again (a retry's backoff, a deadline, a scheduled time), or None; a failure is logged
and retried after ``retry_seconds``. This is the Python counterpart of client-go's
rate-limited work queue, minus the rate limiting, which the API server does for us.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

Work = Callable[[K], Awaitable[float | None]]
"""Work on one key; returns the seconds after which to run again, or None."""


class KeyedQueue(Generic[K]):
    def __init__(self, what: str, work: Work[K], *, retry_seconds: float = 5.0) -> None:
        self.what = what
        """What the work does, for the log: "reconciling run", "handling event"."""
        self.work = work
        self.retry_seconds = retry_seconds
        self._active: dict[K, asyncio.Task[None]] = {}
        self._dirty: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def kick(self, key: K) -> None:
        """Run the work for ``key`` now, or once more after the pass in progress."""
        if key in self._active:
            self._dirty.add(key)
            return
        self._active[key] = asyncio.get_running_loop().create_task(self._drain(key))

    def wake(self, key: K, delay: float) -> None:
        """Kick ``key`` after ``delay`` seconds, replacing an earlier wake-up."""
        self.cancel(key)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(delay, 0.0), self._fired, key)

    def wake_by(self, key: K, delay: float) -> None:
        """Kick ``key`` after ``delay`` seconds, unless an earlier wake-up is due anyway."""
        timer = self._timers.get(key)
        if timer is not None and timer.when() <= asyncio.get_running_loop().time() + delay:
            return
        self.wake(key, delay)

    def cancel(self, key: K) -> None:
        """Forget a pending wake-up of ``key`` (a pass in progress still finishes)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def busy(self, key: K) -> bool:
        return key in self._active

    def _fired(self, key: K) -> None:
        self._timers.pop(key, None)
        self.kick(key)

    async def _drain(self, key: K) -> None:
        try:
            while True:
                self._dirty.discard(key)
                try:
                    delay = await self.work(key)
                except Exception:
                    log.exception(
                        "%s %s failed; retrying in %ss", self.what, key, self.retry_seconds
                    )
                    delay = self.retry_seconds
                if delay is not None:
                    self.wake(key, delay)
                if key not in self._dirty:
                    return
        finally:
            self._active.pop(key, None)
