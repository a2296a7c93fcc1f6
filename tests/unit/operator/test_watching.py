"""The operator's own watches: resume from the last version, relist when it expired."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubehatch_operator.watching import Feed, Follower, scopes


class Response:
    """A watch response: newline-delimited JSON events, streamed."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.body = b"".join(json.dumps(e).encode() + b"\n" for e in events)

    def stream(self, **_: Any) -> Any:
        yield self.body

    def release_conn(self) -> None:
        pass


def job(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


def test_events_are_handed_over_and_an_expired_watch_resumes_from_a_relisting() -> None:
    streams = [
        [
            {"type": "ADDED", "object": job("a", "11")},
            {"type": "BOOKMARK", "object": job("", "15")},
            {"type": "DELETED", "object": job("a", "16")},
        ],
        [{"type": "ERROR", "object": {"code": 410, "message": "too old"}}],
        [{"type": "MODIFIED", "object": job("b", "40")}],
    ]
    asked: list[str] = []
    resumed: list[str | None] = []
    seen: list[tuple[str, str]] = []

    async def scenario() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def request(scope: Any, options: dict[str, Any]) -> Response:
            asked.append(options["resource_version"])
            if not streams:
                follower.stop()
                loop.call_soon_threadsafe(done.set)
                return Response([])
            return Response(streams.pop(0))

        def resume(scope: Any, last: str | None) -> str:
            resumed.append(last)
            return "30"  # what a fresh listing covers

        def observe(kind: str, obj: dict[str, Any]) -> None:
            seen.append((kind, obj["metadata"]["name"]))

        follower = Follower(Feed("step Jobs", request, "sel", observe, resume), ("ns",))
        follower.start("10")
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert seen == [("ADDED", "a"), ("DELETED", "a"), ("MODIFIED", "b")]  # no BOOKMARK
    # From the start version; then from the last one seen (16); after 410, from a relisting.
    assert asked[:3] == ["10", "16", "30"] and resumed == [None]


def test_globs_watch_every_namespace() -> None:
    assert scopes(("a", "b")) == ["a", "b"]
    assert scopes(("team-*",)) == [None] and scopes(()) == [None]
