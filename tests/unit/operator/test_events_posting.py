"""Events are best effort: sent apart from the writes that move runs, dropped when the
API server falls behind."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from kubernetes import client

from kubehatch_operator import kube as kube_module
from kubehatch_operator.kube import Kube
from kubehatch_operator.metrics import EVENTS_DROPPED

RUN = {
    "apiVersion": "kubehatch.dev/v1alpha1", "kind": "WorkflowRun",
    "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
}  # fmt: skip


class SlowCore:
    """The core API, answering Event creates only when released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[str] = []
        self.threads: set[str] = set()

    def create_namespaced_event(
        self, namespace: str, body: dict[str, Any], **options: Any
    ) -> Answer:
        assert options == {"_preload_content": False}  # no typed model of the answer
        self.threads.add(threading.current_thread().name)
        self.release.wait(5)
        self.sent.append(body["reason"])
        return Answer()


class Answer:
    """A raw answer: read and released, so that its connection is reused."""

    def read(self) -> bytes:
        return b"{}"

    def release_conn(self) -> None:
        pass


def test_events_beyond_the_backlog_are_dropped_and_the_rest_sent_by_their_own_threads(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(kube_module, "EVENT_BACKLOG", 3)
    kube = Kube(client.ApiClient())
    core = SlowCore()
    kube.core = core  # type: ignore[assignment]
    dropped = EVENTS_DROPPED._value.get()

    async def scenario() -> None:
        posts = [
            asyncio.create_task(kube.post_event(RUN, "Normal", f"E{i}", "m")) for i in range(5)
        ]
        await asyncio.sleep(0.05)
        core.release.set()
        await asyncio.gather(*posts)

    asyncio.run(scenario())
    assert sorted(core.sent) == ["E0", "E1", "E2"]
    assert EVENTS_DROPPED._value.get() - dropped == 2
    assert all(name.startswith("events") for name in core.threads)
