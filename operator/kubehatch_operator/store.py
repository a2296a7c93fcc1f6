"""The operator's in-memory view of the cluster, fed by watch events.

It holds only what reconciling needs: the bodies of unfinished runs, one small
`Attempt` per step Job, and parsed Workflow specs. Finished runs are dropped to a name,
so memory stays flat with thousands of finished runs in the cluster.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kubehatch.api import wire
from kubehatch.api.workflow import WorkflowSpec
from kubehatch_operator.decisions import Attempt, AttemptState
from kubehatch_operator.retention import FinishedRun

RunKey = tuple[str, str]  # (namespace, name)
FINISHED_PHASES = {"Succeeded", "Failed", "Cancelled", "TimedOut"}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def run_owner(job: dict[str, Any]) -> str | None:
    for ref in job.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "WorkflowRun" and ref.get("apiVersion", "").startswith(wire.GROUP):
            return ref["name"]
    return None


def attempt_from_job(job: dict[str, Any]) -> Attempt | None:
    """The step attempt a Job runs, and how far it got; None for a Job that is not ours."""
    meta = job.get("metadata", {})
    labels = meta.get("labels") or {}
    try:
        step, attempt = labels[wire.LABEL_STEP], int(labels[wire.LABEL_ATTEMPT])
    except (KeyError, ValueError):
        return None
    status = job.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    started = _time(status.get("startTime")) or _time(meta.get("creationTimestamp"))
    # SuccessCriteriaMet and FailureTarget come first (1.31+); Complete and Failed once
    # the pod is gone. Acting on the first signal saves a round of pod termination.
    done = conditions.get("SuccessCriteriaMet") or conditions.get("Complete")
    if done or (status.get("succeeded") or 0) >= 1:
        finished = _time(status.get("completionTime")) or _time(
            (done or {}).get("lastTransitionTime")
        )
        return Attempt(step, attempt, meta["name"], AttemptState.SUCCEEDED, started, finished)
    failed = conditions.get("FailureTarget") or conditions.get("Failed")
    if failed:
        return Attempt(
            step,
            attempt,
            meta["name"],
            AttemptState.FAILED,
            started,
            _time(failed.get("lastTransitionTime")),
            timed_out=failed.get("reason") == "DeadlineExceeded",
        )
    return Attempt(step, attempt, meta["name"], AttemptState.ACTIVE, started)


@dataclass
class Store:
    runs: dict[RunKey, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[RunKey, dict[str, Attempt]] = field(default_factory=lambda: defaultdict(dict))
    workflows: dict[RunKey, WorkflowSpec | str] = field(default_factory=dict)
    succeeded_at: dict[tuple[RunKey, str], float] = field(default_factory=dict)
    """When (monotonic clock) this process saw each step's Job succeed: for the handoff metric."""
    finished: dict[RunKey, FinishedRun] = field(default_factory=dict)
    """Finished runs, reduced to what retention needs."""

    # --- runs ---------------------------------------------------------------------------
    def observe_run(self, body: dict[str, Any], deleted: bool = False) -> RunKey:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if deleted:
            self.forget_run(key)
        elif key in self.finished:
            pass  # final: an older event arriving late must not bring the run back
        elif (status := body.get("status") or {}).get("phase") in FINISHED_PHASES:
            self.runs.pop(key, None)
            self._drop_attempts(key)
            workflow = (body.get("spec") or {}).get("workflowRef", {}).get("name", "")
            finished_at = _time(status.get("finishedAt")) or _time(meta.get("creationTimestamp"))
            self.finished[key] = FinishedRun(key[1], workflow, finished_at or datetime.now(UTC))
        elif newer(body, self.runs.get(key)):
            self.runs[key] = body
        return key

    def forget_run(self, key: RunKey) -> None:
        self.runs.pop(key, None)
        self._drop_attempts(key)
        self.finished.pop(key, None)

    # --- jobs ---------------------------------------------------------------------------
    def observe_job(self, body: dict[str, Any], deleted: bool = False) -> RunKey | None:
        run = run_owner(body)
        attempt = attempt_from_job(body)
        if run is None or attempt is None:
            return None
        key = (body["metadata"]["namespace"], run)
        if key in self.finished:
            return None
        if deleted:
            self.attempts.get(key, {}).pop(attempt.job_name, None)
        else:
            known = self.attempts[key].get(attempt.job_name)
            if known is not None and known.message and attempt.state is AttemptState.FAILED:
                attempt = known  # keep the termination message already read
            if attempt.state is AttemptState.SUCCEEDED and (
                known is None or known.state is not AttemptState.SUCCEEDED
            ):
                self.succeeded_at[(key, attempt.step)] = time.monotonic()
            self.attempts[key][attempt.job_name] = attempt
        return key

    def _drop_attempts(self, key: RunKey) -> None:
        for attempt in self.attempts.pop(key, {}).values():
            self.succeeded_at.pop((key, attempt.step), None)

    def note_created(self, key: RunKey, attempt: Attempt) -> None:
        """Record a Job this process just created, before its watch event arrives."""
        self.attempts[key].setdefault(attempt.job_name, attempt)

    # --- workflows ----------------------------------------------------------------------
    def observe_workflow(self, body: dict[str, Any], deleted: bool = False) -> RunKey:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if deleted:
            self.workflows.pop(key, None)
            return key
        try:
            self.workflows[key] = WorkflowSpec.model_validate(body.get("spec") or {})
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            self.workflows[key] = problems or str(err)
        return key

    def finished_runs_of(self, workflow: RunKey) -> list[FinishedRun]:
        namespace, name = workflow
        return [r for key, r in self.finished.items() if key[0] == namespace and r.workflow == name]

    def runs_waiting_for(self, workflow: RunKey) -> list[RunKey]:
        """Unstarted runs of a workflow: they wait for it to exist or become valid."""
        namespace, name = workflow
        return [
            key
            for key, body in self.runs.items()
            if key[0] == namespace
            and (body.get("spec") or {}).get("workflowRef", {}).get("name") == name
            and not (body.get("status") or {}).get("workflowSpec")
        ]


def newer(body: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether `body` is at least as new as what the store holds (watch events can lag
    behind the response of our own write)."""
    if current is None:
        return True
    try:
        return int(body["metadata"]["resourceVersion"]) >= int(
            current["metadata"]["resourceVersion"]
        )
    except (KeyError, ValueError):
        return True
