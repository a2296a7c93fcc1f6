"""What the watches deliver, parsed once: runs, Workflows and step Jobs as the store keeps them.

Parsing is apart from the store so that both stay small: a `RunEntry` is a run's
typed view plus the little of its raw object that patches and Events need; an `Attempt`
is all a step Job tells.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from kubehatch.api import wire
from kubehatch.api.graph import format_path
from kubehatch.api.workflow import WorkflowSpec
from kubehatch.api.workflowrun import WorkflowRunPhase, WorkflowRunSpec, WorkflowRunStatus
from kubehatch_operator.admission import Contender
from kubehatch_operator.model import Attempt, AttemptState, Run

Key = tuple[str, str]
"""(namespace, name) of an object."""

_EPOCH = datetime.fromtimestamp(0, UTC)


def problems(err: ValidationError, prefix: str = "") -> str:
    """pydantic's errors as one line, each with the path of the field it is about."""
    return "; ".join(
        f"{prefix}{format_path(tuple(e['loc']))}: {e['msg']}" for e in err.errors()
    ) or str(err)


def workflow_of(run: dict[str, Any]) -> Key:
    """(namespace, name) of the Workflow a WorkflowRun body refers to, read leniently."""
    spec = wire.mapping(run.get("spec"))
    ref = wire.mapping(spec.get("workflowRef"))
    return (run["metadata"]["namespace"], str(ref.get("name") or ""))


INLINE_INPUT_BYTES = wire.INLINE_INPUT_BYTES
"""Inputs up to this size (as JSON) stay in the store (the step pods get them in their
environment); larger ones are read from the API when a pass needs them (to store them in
the input ConfigMap, or to compute a concurrency key), so that memory stays bounded with
many waiting runs of large inputs."""


@dataclass(frozen=True)
class RunEntry:
    """A WorkflowRun as the watch delivered it, parsed once, without what no pass reads:
    managedFields, and an input larger than INLINE_INPUT_BYTES."""

    key: Key
    body: dict[str, Any]
    """The object (slimmed): what Events refer to, and what a status patch is computed
    against."""
    workflow: str
    created: datetime
    resource_version: int | None
    run: Run | None
    """The typed run; None when the object does not parse (see `problem`)."""
    problem: str | None = None
    input_bytes: int = 0
    """Size of spec.input as compact JSON."""
    input_elided: bool = False
    """spec.input was left out (see INLINE_INPUT_BYTES): `run.spec.input` is empty."""

    @classmethod
    def parse(cls, body: dict[str, Any]) -> RunEntry:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        spec = wire.mapping(body.get("spec"))
        size = len(json.dumps(spec.get("input") or {}, separators=(",", ":")).encode())
        elided = size > INLINE_INPUT_BYTES
        if elided:
            spec = {k: v for k, v in spec.items() if k != "input"}
        slim = {
            **body,
            "metadata": {k: v for k, v in meta.items() if k != "managedFields"},
            "spec": spec,
        }
        run, problem = None, None
        try:
            run = Run(
                name=meta["name"],
                uid=str(meta.get("uid", "")),
                generation=int(meta.get("generation") or 1),
                spec=WorkflowRunSpec.model_validate(spec),
                status=WorkflowRunStatus.model_validate(body.get("status") or {}),
            )
        except ValidationError as err:
            problem = problems(err)
        return cls(
            key=key,
            body=slim,
            workflow=workflow_of(body)[1],
            created=wire.parse_time(meta.get("creationTimestamp")) or _EPOCH,
            resource_version=resource_version(body),
            run=run,
            problem=problem,
            input_bytes=size,
            input_elided=elided,
        )

    @cached_property
    def uid(self) -> str:
        return str(self.body["metadata"].get("uid", ""))

    @property
    def workflow_key(self) -> Key:
        return (self.key[0], self.workflow)

    @property
    def arrival(self) -> int:
        """Order of arrival: the resourceVersion the operator first saw (kept in status)."""
        recorded = self.run.status.arrival if self.run is not None else None
        if recorded is not None and recorded.isdigit():
            return int(recorded)
        return self.resource_version or 0

    @cached_property
    def started(self) -> bool:
        """Took its Workflow snapshot: it holds a concurrency slot until it finishes."""
        return self.run is not None and self.run.status.workflow_spec is not None

    def not_due(self, now: datetime) -> bool:
        """Scheduled for later than ``now`` (spec.scheduledAt)."""
        return self._scheduled_at is not None and self._scheduled_at > now

    @cached_property
    def arrived(self) -> datetime:
        """Its creation, or when it was last retried (then it queued again)."""
        retried = self.run.status.retried_at if self.run is not None else None
        return max(self.created, retried) if retried is not None else self.created

    @property
    def queued_since(self) -> datetime:
        """Since when it may wait for a slot: its arrival, or its scheduledAt if later."""
        due = self._scheduled_at
        return max(self.arrived, due) if due is not None else self.arrived

    @cached_property
    def _scheduled_at(self) -> datetime | None:
        return self.run.spec.scheduled_at if self.run is not None else None

    @cached_property
    def recorded_key(self) -> str | None:
        """The concurrency key in its status: its admission group, once known."""
        return self.run.status.concurrency_key if self.run is not None else None

    @cached_property
    def contender(self) -> Contender | None:
        """The run as admission weighs it, made once per version (admission weighs every
        run of a key each time a slot frees); None until its key is recorded."""
        if self.run is None or self.recorded_key is None:
            return None
        return self.contender_as(
            self.recorded_key, self.run.status.concurrency_limit, running=self.started
        )

    def contender_as(self, key: str, limit: int | None, *, running: bool) -> Contender:
        """The run as admission weighs it, with this key and limit."""
        run = self.run
        assert run is not None
        return Contender(
            self.key[1], key, self.arrived, running=running, arrival=self.arrival,
            leaving=run.spec.cancel, priority=run.spec.priority, limit=limit,
            started_at=run.status.started_at,
        )  # fmt: skip

    @cached_property
    def queued_on(self) -> str | None:
        """The key whose slot it waits for, when all its own pass would do is ask for one:
        queued, not cancelled, nothing in its spec unseen. Such a run is woken by
        admission of its key, not by every event about it."""
        run = self.run
        if (
            run is None
            or self.started
            or run.spec.cancel
            or run.status.phase is not WorkflowRunPhase.QUEUED
            or run.status.observed_generation != run.generation
        ):
            return None
        return self.recorded_key


SHARED = "@"
"""Prefix of a shared limit's scope: no Workflow's name (a DNS label) starts so."""


def is_shared(scope: Key) -> bool:
    return scope[1].startswith(SHARED)


@dataclass(frozen=True)
class WorkflowEntry:
    """A Workflow: its raw object (triggers read it leniently) and its parsed spec."""

    body: dict[str, Any]
    spec: WorkflowSpec | None
    problem: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> WorkflowEntry:
        try:
            return cls(body, WorkflowSpec.model_validate(body.get("spec") or {}))
        except ValidationError as err:
            return cls(body, None, problems(err))

    def scope(self, workflow: Key) -> Key:
        """Whose slots its runs take: the workflow's own, or those of the limit it shares
        (`concurrency.shared`), a name no Workflow can have."""
        concurrency = self.spec.concurrency if self.spec is not None else None
        if concurrency is not None and concurrency.shared is not None:
            return (workflow[0], SHARED + concurrency.shared)
        return workflow

    @property
    def for_decisions(self) -> WorkflowSpec | str:
        """The spec, or why it is invalid (what `decide` takes)."""
        return self.spec if self.spec is not None else (self.problem or "invalid spec")


def attempt_from_job(job: dict[str, Any]) -> Attempt | None:
    """The step attempt a Job runs, and how far it got; None for a Job that is not ours."""
    meta = job.get("metadata", {})
    labels = meta.get("labels") or {}
    try:
        step, attempt = labels[wire.LABEL_STEP], int(labels[wire.LABEL_ATTEMPT])
        item = int(labels[wire.LABEL_ITEM]) if wire.LABEL_ITEM in labels else None
    except (KeyError, ValueError):
        return None
    status = job.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    began = wire.parse_time(status.get("startTime")) or wire.parse_time(
        meta.get("creationTimestamp")
    )
    # SuccessCriteriaMet and FailureTarget come first (1.31+); Complete and Failed once
    # the pod is gone. Acting on the first signal saves a round of pod termination.
    uid = str(meta.get("uid", ""))
    version = resource_version(job) or 0
    # A pod is Ready once its container runs (step pods have no probes); the counts of
    # finished pods cover a container that ran and stopped between two looks.
    ran = any((status.get(n) or 0) >= 1 for n in ("ready", "succeeded", "failed"))
    done = conditions.get("SuccessCriteriaMet") or conditions.get("Complete")
    if done or (status.get("succeeded") or 0) >= 1:
        finished = wire.parse_time(status.get("completionTime")) or wire.parse_time(
            (done or {}).get("lastTransitionTime")
        )
        return Attempt(
            step, attempt, meta["name"], AttemptState.SUCCEEDED, began, finished,
            uid=uid, started=True, resource_version=version, item=item,
        )  # fmt: skip
    failed = conditions.get("FailureTarget") or conditions.get("Failed")
    if failed:
        return Attempt(
            step,
            attempt,
            meta["name"],
            AttemptState.FAILED,
            began,
            wire.parse_time(failed.get("lastTransitionTime")),
            timed_out=failed.get("reason") == "DeadlineExceeded",
            uid=uid,
            # FailureTarget comes first, Failed once no pod of the Job runs any more.
            terminating="Failed" not in conditions or (status.get("terminating") or 0) > 0,
            started=ran,
            resource_version=version,
            item=item,
        )
    suspended = bool(wire.mapping(job.get("spec")).get("suspend"))
    return Attempt(
        step, attempt, meta["name"], AttemptState.ACTIVE, began,
        uid=uid, started=ran, resource_version=version, suspended=suspended, item=item,
    )  # fmt: skip


def resource_version(body: dict[str, Any]) -> int | None:
    try:
        return int(body["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


def older(body: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether ``body`` is an older version than ``current`` (watch events can lag behind
    the response of our own write). Kubernetes documents resourceVersion as opaque;
    etcd's revisions are integers, and an object without one is never called older."""
    new, old = resource_version(body), resource_version(current)
    return new is not None and old is not None and new < old
