"""Recent WorkflowEvents, for steps that wait for one, and which runs wait for which keys.

Events are kept per namespace for a day (the longest lookback a wait may declare), at
most `LIMIT` per namespace, whatever becomes of the objects (triggers delete handled
events after a while). An arriving event wakes only the runs waiting for its key: exact
keys are looked up, and only the waits with a trailing ``*`` are scanned, so the work per
event does not grow with the number of runs. After a restart the log holds the events
still in the cluster, listed by the event watch.
"""

from __future__ import annotations

from collections import defaultdict, deque
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch.api.triggerspec import key_matches
from kubehatch_operator.waits import MAX_LOOKBACK, SeenEvent

LIMIT = 10_000
Key = tuple[str, str]


class EventLog:
    def __init__(self, keep: timedelta = MAX_LOOKBACK, limit: int = LIMIT) -> None:
        self.keep = keep
        self.limit = limit
        self._events: dict[str, deque[SeenEvent]] = defaultdict(deque)
        self._seen: set[tuple[str, str]] = set()
        self._exact: dict[tuple[str, str], set[Key]] = defaultdict(set)
        self._wildcards: dict[str, dict[Key, set[str]]] = defaultdict(dict)
        self._patterns: dict[Key, set[str]] = {}

    def observe(self, body: dict[str, Any]) -> set[Key]:
        """Record an event (once); returns the runs waiting for its key."""
        meta = body.get("metadata") or {}
        spec = wire.mapping(body.get("spec"))
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        at = wire.parse_time(meta.get("creationTimestamp"))
        key = spec.get("key")
        if not isinstance(key, str) or at is None or (namespace, name) in self._seen:
            return set()
        event = SeenEvent(
            name=name,
            key=key,
            data=wire.mapping(spec.get("payload")),
            metadata={
                str(k): str(v) for k, v in wire.mapping(spec.get("additionalMetadata")).items()
            },
            at=at,
        )
        kept = self._events[namespace]
        kept.append(event)
        self._seen.add((namespace, name))
        self._trim(namespace, at)
        waiting = set(self._exact.get((namespace, key), ()))
        for run, patterns in self._wildcards.get(namespace, {}).items():
            if any(key_matches(pattern, key) for pattern in patterns):
                waiting.add(run)
        return waiting

    def matching(self, namespace: str, pattern: str, since: datetime) -> list[SeenEvent]:
        """The events of the namespace whose key matches, that arrived at ``since`` or later."""
        return [
            e
            for e in self._events.get(namespace, ())
            if e.at >= since and key_matches(pattern, e.key)
        ]

    def wait(self, run: Key, patterns: set[str]) -> None:
        """Run ``run`` now waits for these keys (none: it waits for no event)."""
        for pattern in self._patterns.pop(run, set()):
            exact = self._exact.get((run[0], pattern))
            if exact is not None:
                exact.discard(run)
                if not exact:
                    del self._exact[(run[0], pattern)]
            self._wildcards.get(run[0], {}).pop(run, None)
        if not patterns:
            return
        self._patterns[run] = set(patterns)
        for pattern in patterns:
            if pattern.endswith("*"):
                self._wildcards[run[0]].setdefault(run, set()).add(pattern)
            else:
                self._exact[(run[0], pattern)].add(run)

    def _trim(self, namespace: str, now: datetime) -> None:
        kept = self._events[namespace]
        while kept and (len(kept) > self.limit or kept[0].at < now - self.keep):
            gone = kept.popleft()
            self._seen.discard((namespace, gone.name))

    def __len__(self) -> int:
        return sum(len(events) for events in self._events.values())
