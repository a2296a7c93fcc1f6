"""The read half of a pass: what it reads from the API never overwrites a newer watch event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from kubehatch.api import wire
from kubehatch_operator import reading
from kubehatch_operator.model import AttemptState
from kubehatch_operator.store import Store

RUN = {
    "apiVersion": wire.API_VERSION,
    "kind": "WorkflowRun",
    "metadata": {"namespace": "ns", "name": "r", "uid": "u1", "resourceVersion": "5",
                 "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"workflowRef": {"name": "wf"}},
}  # fmt: skip


def job(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns", "name": "r-one-1", "uid": "j1", "resourceVersion": "9",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {wire.LABEL_STEP: "one", wire.LABEL_ATTEMPT: "1"},
            "ownerReferences": [wire.owner_reference("WorkflowRun", "r", "u1")],
        },
        "status": status,
    }  # fmt: skip


def test_a_job_that_succeeds_while_its_pod_is_asked_why_it_waits_stays_succeeded() -> None:
    """The Job's Complete event arrives while the pass reads its pod's waiting reason:
    writing the pass's older copy back would turn it Active again and stall the run."""
    store = Store()
    store.observe_run(RUN)
    store.observe_job(job({"active": 1, "startTime": "2026-01-01T00:00:00Z"}))
    entry = store.runs[("ns", "r")]

    class Kube:
        async def why_waiting(self, namespace: str, job_uid: str) -> str:
            store.observe_job(
                job({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
            )
            await asyncio.sleep(0)
            return "ContainerCreating"

    later = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    asyncio.run(reading._attempts(store, Kube(), entry, later))  # type: ignore[arg-type]
    states = [a.state for a in store.attempts_of(entry).values()]
    assert states == [AttemptState.SUCCEEDED]


def test_a_failure_message_read_while_the_job_moves_to_failed_is_kept() -> None:
    """FailureTarget comes first, Failed a moment later: when that event arrives while the
    pass reads the pod's termination message, the newer Job state wins but keeps the
    message, or the step's final status would not say why it failed."""
    store = Store()
    store.observe_run(RUN)
    failing = [{"type": "FailureTarget", "status": "True"}]
    store.observe_job(job({"failed": 1, "terminating": 1, "conditions": failing}))
    entry = store.runs[("ns", "r")]

    class Kube:
        async def termination_message(self, namespace: str, job_uid: str) -> tuple[str, int]:
            failed = [*failing, {"type": "Failed", "status": "True"}]
            store.observe_job(job({"failed": 1, "conditions": failed}))
            await asyncio.sleep(0)
            return "ValueError: boom", 1

    now = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    attempts = asyncio.run(reading._attempts(store, Kube(), entry, now))  # type: ignore[arg-type]
    assert [(a.message, a.terminating) for a in attempts] == [("ValueError: boom", False)]
    (kept,) = store.attempts_of(entry).values()
    assert kept.message == "ValueError: boom"
