"""When this machine saw each pod appear, its container start and its container stop.

Both engines are timed by the same clock: receive times of one pod watch, so that the
figures include what a user's watch sees, and no timestamp of second resolution.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client, watch


@dataclass
class PodTimes:
    labels: dict[str, str]
    annotations: dict[str, str]
    seen: float
    added: bool
    """First seen in an ADDED event: created while the clock ran."""
    running: dict[str, float] = field(default_factory=dict)
    """Per container: when it was first seen running (or already terminated)."""
    terminated: dict[str, float] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)


class PodClock(threading.Thread):
    """A pod watch of one namespace, recording monotonic receive times.

    `on_change`, if given, is called on the watch's thread with each event's pod times once
    they are recorded: a driver can react to a pod's state as early as this clock sees it.
    It must be quick, or it delays the times of the events behind it.
    """

    def __init__(self, namespace: str, on_change: Callable[[PodTimes], None] | None = None) -> None:
        super().__init__(daemon=True)
        self.namespace = namespace
        self.on_change = on_change
        self.pods: dict[str, PodTimes] = {}
        self.ready = threading.Event()
        self._watch = watch.Watch()
        self._stopped = False

    def run(self) -> None:
        core = client.CoreV1Api()
        version = core.list_namespaced_pod(self.namespace).metadata.resource_version
        self.ready.set()
        try:
            self._follow(core, version)
        except Exception:  # stopping the watch ends its stream abruptly
            if not self._stopped:
                raise

    def _follow(self, core: client.CoreV1Api, version: str) -> None:
        for event in self._watch.stream(
            core.list_namespaced_pod, self.namespace, resource_version=version,
            timeout_seconds=3600,
        ):  # fmt: skip
            now = time.monotonic()
            pod = event["object"]
            times = self.pods.setdefault(
                pod.metadata.name,
                PodTimes(
                    pod.metadata.labels or {}, pod.metadata.annotations or {}, now,
                    added=event["type"] == "ADDED",
                ),
            )  # fmt: skip
            for status in (pod.status.container_statuses if pod.status else None) or []:
                state = status.state
                if state is None:
                    continue
                if state.running is not None or state.terminated is not None:
                    times.running.setdefault(status.name, now)
                if state.terminated is not None:
                    times.terminated.setdefault(status.name, now)
                    times.exit_codes[status.name] = state.terminated.exit_code
            if self.on_change is not None:
                self.on_change(times)

    def start_watching(self) -> None:
        self.start()
        self.ready.wait(30)
        time.sleep(0.5)  # the watch request is out before anything is created

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()
