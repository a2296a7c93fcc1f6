"""Prometheus metrics of the operator, served on KUBEHATCH_METRICS_PORT when it is set.

They answer the questions the operator is judged on: how fast a finished step hands
over to its children, how many API writes a step costs, and how much is in flight.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

API_WRITES = Counter(
    "kubehatch_api_writes_total",
    "Writes the operator sent to the Kubernetes API, by verb and resource.",
    ["verb", "resource"],
)
API_READS = Counter(
    "kubehatch_api_reads_total",
    "Reads (get, list) the operator sent to the Kubernetes API beside its watches.",
    ["verb", "resource"],
)
RECONCILE_SECONDS = Histogram(
    "kubehatch_reconcile_seconds",
    "Time of one reconcile pass of one run (read, decide, write).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
HANDOFF_SECONDS = Histogram(
    "kubehatch_step_handoff_seconds",
    "From a step's Job completion event reaching the operator to its children's Jobs created.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
ADMISSION_SECONDS = Histogram(
    "kubehatch_admission_cpu_seconds",
    "CPU time of one concurrency admission (weighing the runs of a key, or of a workflow, "
    "that hold or want its slots), by what asked for it: a freed slot, or a run's own pass.",
    ["trigger"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)


@contextmanager
def admission_cpu(trigger: str) -> Iterator[None]:
    """Observe the CPU time of the block (this thread's: the event loop's own work, not
    the waits of a loaded machine) in ADMISSION_SECONDS."""
    start = time.thread_time()
    try:
        yield
    finally:
        ADMISSION_SECONDS.labels(trigger).observe(time.thread_time() - start)


EVENTS_DROPPED = Counter(
    "kubehatch_events_dropped_total",
    "Kubernetes Events not posted because too many were waiting (the API server was behind).",
)
RUNS_IN_FLIGHT = Gauge("kubehatch_runs_in_flight", "Runs started and not finished.")


# --- per workflow: what dashboards graph and autoscalers (KEDA) read ------------------------
_SPANS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
RUN_SECONDS = Histogram(
    "kubehatch_run_duration_seconds",
    "From a run's start (its first step) to its end, by workflow.",
    ["namespace", "workflow"],
    buckets=_SPANS,
)
STEP_SECONDS = Histogram(
    "kubehatch_step_duration_seconds",
    "From a step's first attempt's start to its end, by workflow.",
    ["namespace", "workflow"],
    buckets=_SPANS,
)
QUEUE_WAIT_SECONDS = Histogram(
    "kubehatch_run_queue_wait_seconds",
    "From a run's creation to its start (waiting for its schedule, a slot, its Workflow).",
    ["namespace", "workflow"],
    buckets=(0.1, 0.25, 0.5, 1, *_SPANS[1:]),
)
RUNS_FINISHED = Counter(
    "kubehatch_runs_finished_total",
    "Runs that ended, by workflow and final phase.",
    ["namespace", "workflow", "phase"],
)
RUNS_QUEUED = Gauge(
    "kubehatch_runs_queued",
    "Runs waiting in phase Queued (for a concurrency slot), by workflow.",
    ["namespace", "workflow"],
)
_queued: dict[tuple[str, str], set[str]] = {}


def observe_run(
    key: tuple[str, str], workflow: str, created: datetime, before: dict[str, Any], after: Any
) -> None:
    """After a status write: the run's transitions (``before``: the old status as a dict;
    ``after``: the new WorkflowRunStatus) into the per-workflow metrics above."""
    labels = (key[0], workflow)
    phase = after.phase.value if after.phase is not None else None
    waiting = _queued.setdefault(labels, set())
    (waiting.add if phase == "Queued" else waiting.discard)(key[1])
    RUNS_QUEUED.labels(*labels).set(len(waiting))
    if after.started_at is not None and not before.get("startedAt"):
        QUEUE_WAIT_SECONDS.labels(*labels).observe(_seconds(created, after.started_at))
    if after.phase is not None and after.phase.finished and before.get("phase") != phase:
        RUNS_FINISHED.labels(*labels, phase).inc()
        if after.started_at is not None and after.finished_at is not None:
            RUN_SECONDS.labels(*labels).observe(_seconds(after.started_at, after.finished_at))
    old_steps = before.get("steps") or {}
    for name, step in after.steps.items():
        done = step.phase.finished and step.started_at and step.finished_at
        if done and (old_steps.get(name) or {}).get("phase") != step.phase.value:
            STEP_SECONDS.labels(*labels).observe(_seconds(step.started_at, step.finished_at))


def forget_run(key: tuple[str, str], workflow: str) -> None:
    """A deleted run leaves the queued gauge."""
    waiting = _queued.get((key[0], workflow))
    if waiting is not None and key[1] in waiting:
        waiting.discard(key[1])
        RUNS_QUEUED.labels(key[0], workflow).set(len(waiting))


def _seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)


def serve(port: int) -> None:
    if port:
        start_http_server(port)
