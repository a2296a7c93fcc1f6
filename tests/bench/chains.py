"""kubehatch's side of `make bench`: a 5-step chain of no-op steps, and trigger latency.

Timed by this machine's receive times (see podclock): a run's wall time runs from just
before its creation to its Succeeded phase on a watch; a step's gap runs from its parent's
container running (the run's creation, for the first step) to its own container running.
A step's overhead is its start-to-start time minus the pod floor's creation-to-running.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

from kubehatch import workflow_manifests
from kubehatch.api import wire
from tests.bench.common import summary_ms
from tests.bench.podclock import PodClock, PodTimes
from tests.e2e import kube
from tests.e2e.workers.noop import worker

CHAIN = [f"s{i}" for i in range(1, 6)]
FINAL = frozenset({"Succeeded", "Failed", "Cancelled", "TimedOut"})


class RunClock(threading.Thread):
    """When each run's final phase was first seen."""

    def __init__(self, namespace: str) -> None:
        super().__init__(daemon=True)
        self.namespace = namespace
        self.finished: dict[str, tuple[float, str]] = {}
        self._watch = watch.Watch()
        self._stopped = False

    def run(self) -> None:
        try:
            self._follow()
        except Exception:  # stopping the watch ends its stream abruptly
            if not self._stopped:
                raise

    def _follow(self) -> None:
        custom = client.CustomObjectsApi()
        for event in self._watch.stream(
            custom.list_namespaced_custom_object, wire.GROUP, wire.VERSION, self.namespace,
            wire.WORKFLOW_RUNS, timeout_seconds=3600,
        ):  # fmt: skip
            run = event["object"]
            phase = (run.get("status") or {}).get("phase")
            if phase in FINAL:
                self.finished.setdefault(run["metadata"]["name"], (time.monotonic(), phase))

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()


def install(namespace: str, image: str, events: tuple[str, ...] = ()) -> None:
    for manifest in workflow_manifests(worker):
        manifest["spec"]["worker"] = "tests.e2e.workers.noop:worker"
        if manifest["metadata"]["name"] in ("noop-chain", "noop"):
            if events and manifest["metadata"]["name"] == "noop":
                manifest["spec"]["triggers"] = {"events": list(events)}
            kube.apply_workflow(namespace, manifest, image)


def run_chains(namespace: str, runs: int, timeout: float = 600) -> ChainSamples:
    """`runs` chains created at once: their wall times and step start-to-start gaps."""
    pods, finished = PodClock(namespace), RunClock(namespace)
    pods.start_watching()
    finished.start()
    created: dict[str, float] = {}
    batch = uuid.uuid4().hex[:5]

    def create(i: int) -> None:
        name = f"chain-{batch}-{i}"
        created[name] = time.monotonic()
        kube.create_run(namespace, name, "noop-chain")

    with ThreadPoolExecutor(min(runs, 16)) as pool:
        list(pool.map(create, range(runs)))
    deadline = time.monotonic() + timeout
    while len([n for n in created if n in finished.finished]) < runs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{runs} chains did not finish in {timeout:.0f}s")
        time.sleep(0.1)
    time.sleep(1)  # the last pods' terminations reach the pod watch
    pods.stop()
    finished.stop()
    walls = [finished.finished[n][0] - created[n] for n in created]
    by_step = {
        (p.labels.get(wire.LABEL_RUN), p.labels.get(wire.LABEL_STEP)): p
        for p in pods.pods.values()
        if p.labels.get(wire.LABEL_STEP)
    }
    gaps = [
        gap
        for name, at in created.items()
        for gap in start_to_start(at, [by_step.get((name, step)) for step in CHAIN], "step")
    ]
    phases = [finished.finished[n][1] for n in created]
    return ChainSamples(walls, gaps, phases)


@dataclass
class ChainSamples:
    """Raw samples of chains, pooled across batches before any percentile is taken."""

    walls: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    """Each step's start after the step before it (the first: after its run's creation)."""
    phases: list[str] = field(default_factory=list)


def figures(
    batches: list[ChainSamples],
    floor_running: float | None,
    loaded_floor: float | None = None,
    steps: int = len(CHAIN),
) -> dict[str, Any]:
    """Wall times, start-to-start gaps, and both over the pod floor, in milliseconds.

    Without `floor_running` (the loaded floor measured alone) the figures over the floor
    are left out. With `loaded_floor` (the loaded floor's start-to-start p50, seconds),
    each gap minus it: the engine's share once the cluster's own contention is removed.
    """
    walls = [w for b in batches for w in b.walls]
    gaps = [g for b in batches for g in b.gaps]
    phases = [p for b in batches for p in b.phases]
    result: dict[str, Any] = {
        "runs": len(walls),
        "succeeded": phases.count("Succeeded"),
        "wall_ms": summary_ms(walls),
    }
    if floor_running is not None:
        result["wall_per_step_over_floor_ms"] = summary_ms(
            [w / steps - floor_running for w in walls]
        )
    result["step_start_to_start_ms"] = summary_ms(gaps)
    if floor_running is not None:
        result["step_overhead_ms"] = summary_ms([g - floor_running for g in gaps])
    if loaded_floor is not None:
        result["step_overhead_over_loaded_floor_ms"] = summary_ms([g - loaded_floor for g in gaps])
    return result


def start_to_start(created: float, pods: list[PodTimes | None], container: str) -> list[float]:
    """Each step's start (its container first seen running) after the one before it, the
    first step's after its run's creation. The step before may still be on its way out:
    a child starts as soon as its parent's output is written."""
    gaps: list[float] = []
    before = created
    for pod in pods:
        if pod is None or container not in pod.running:
            break
        gaps.append(pod.running[container] - before)
        before = pod.running[container]
    return gaps


def trigger_latency(namespace: str, event_key: str, tries: int) -> dict[str, Any]:
    """A WorkflowEvent's creation to the first step pod of the run it starts, on a watch."""
    custom = client.CustomObjectsApi()

    def send(i: int) -> None:
        custom.create_namespaced_custom_object(
            wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_EVENTS,
            {"apiVersion": wire.API_VERSION, "kind": "WorkflowEvent",
             "metadata": {"name": f"go-{i}"}, "spec": {"key": event_key}},
        )  # fmt: skip

    return {
        "tries": tries,
        "event_to_first_pod_ms": summary_ms(_to_first_pod(namespace, send, tries)),
    }


def submit_latency(namespace: str, tries: int) -> dict[str, Any]:
    """A one-step run's creation to its pod, on a watch: Argo's submission, in our terms."""

    def send(i: int) -> None:
        kube.create_run(namespace, f"submit-{i}", "noop")

    return {
        "tries": tries,
        "run_to_first_pod_ms": summary_ms(_to_first_pod(namespace, send, tries)),
    }


def _to_first_pod(namespace: str, send: Callable[[int], None], tries: int) -> list[float]:
    _settle(namespace)
    latencies = []
    for i in range(tries):
        pods = PodClock(namespace)
        pods.start_watching()
        sent = time.monotonic()
        send(i)
        deadline = time.monotonic() + 60
        while not _created(pods) and time.monotonic() < deadline:
            time.sleep(0.01)
        pods.stop()
        if _created(pods):
            latencies.append(min(_created(pods)) - sent)
        time.sleep(2)  # the run finishes before the next one
    return latencies


def _settle(namespace: str, cap: float = 60.0) -> None:
    """Wait (at most ``cap`` seconds) until the Job controller has finished every Job of an
    earlier phase: its client is limited to 20 requests a second, and a latency timed while
    it still works through 100 Jobs measures that queue, not the engine."""
    batch = client.BatchV1Api()
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        jobs = batch.list_namespaced_job(namespace).items
        if all(
            any(
                c.type in ("Complete", "Failed") and c.status == "True"
                for c in (j.status.conditions if j.status else None) or []
            )
            for j in jobs
        ):
            return
        time.sleep(0.5)


def _created(pods: PodClock) -> list[float]:
    return [p.seen for p in pods.pods.values() if p.added]
