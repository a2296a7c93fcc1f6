"""Prometheus metrics of the operator, served on KUBEHATCH_METRICS_PORT when it is set.

They answer the questions the operator is judged on: how fast a finished step hands
over to its children, how many API writes a step costs, and how much is in flight.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

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


def serve(port: int) -> None:
    if port:
        start_http_server(port)
