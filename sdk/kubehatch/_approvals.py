"""Approving (or rejecting) a step that waits for approval: a method of
:class:`kubehatch.client.Client`.

An answer is a WorkflowApproval naming the run, the step and the approver: the caller,
as the API server knows them (a SelfSubjectReview, what ``kubectl auth whoami`` prints),
so that the chart's admission policy, which requires exactly that, lets it in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

from pydantic import ValidationError

from kubehatch._apierrors import ApiError, status_message
from kubehatch.api import wire
from kubehatch.api.step import StepSpec
from kubehatch.api.workflowapproval import (
    MAX_COMMENT,
    WORKFLOW_APPROVALS,
    WorkflowApproval,
    WorkflowApprovalSpec,
)
from kubehatch.api.workflowrun import StepPhase, StepStatus, WorkflowRun
from kubehatch.errors import KubehatchError

MAX_PREFIX = 58
"""The API server keeps this much of a generateName (then adds 5 characters)."""


class Client(Protocol):
    """What of :class:`kubehatch.client.Client` these use."""

    namespace: str
    api_client: Any

    def get_run(self, name: str) -> WorkflowRun: ...
    def _create(self, plural: str, body: dict[str, Any]) -> str: ...
    def _api_errors(
        self, verb: str, plural: str, name: str | None = None
    ) -> contextlib.AbstractContextManager[None]: ...


def approve(
    self: Client,
    run: str,
    step: str,
    *,
    approved: bool = True,
    comment: str | None = None,
) -> str:
    """Approve (or, ``approved=False``, reject) step ``step`` of run ``run``, which must be
    waiting for approval; returns the WorkflowApproval's name.

    Approved, the step succeeds with ``{"approved", "approver", "comment", "at"}`` as its
    output; rejected, it fails with "rejected by <you>: <comment>". The approver is you,
    as the cluster knows you. Refused, creating nothing, when the run or the step does
    not exist, or the step is not an approval step waiting now.
    """
    if comment is not None and len(comment) > MAX_COMMENT:
        raise KubehatchError(f"the comment has {len(comment)} characters; at most {MAX_COMMENT}")
    waiting_step(self.get_run(run), step)
    approver = whoami(self)
    try:
        spec = WorkflowApprovalSpec.model_validate(
            {
                "runRef": {"name": run},
                "step": step,
                "approved": approved,
                "comment": comment or None,
                "approver": approver,
            }
        )
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise KubehatchError(f"cannot answer: {where}: {problem['msg']}") from None
    body = WorkflowApproval(spec=spec).to_manifest()
    body["metadata"] = {
        "generateName": f"{run}-{step}-"[:MAX_PREFIX],
        "labels": {
            wire.LABEL_RUN: wire.label_value(run),
            wire.LABEL_STEP: wire.label_value(step),
        },
    }
    with _refusals():
        return self._create(WORKFLOW_APPROVALS, body)


def waiting_step(run: WorkflowRun, name: str) -> StepSpec:
    """Step ``name`` of ``run``, if it waits for approval now; else why not (an error)."""
    status = run.status
    spec = status.workflow_spec if status is not None else None
    phase = status.phase if status is not None else None
    if status is None or spec is None:
        raise KubehatchError(
            f"run {run.name!r} has not started ({phase.value if phase else 'Pending'}); "
            f"its steps wait for approval once it runs (kubehatch describe {run.name})"
        )
    steps = {s.name: s for s in spec.all_steps}
    approvals = sorted(n for n, s in steps.items() if s.wait and s.wait.approval)
    which = (
        f"its approval steps: {', '.join(approvals)}" if approvals else "it has no approval step"
    )
    found = steps.get(name)
    if found is None:
        raise KubehatchError(f"run {run.name!r} has no step {name!r} ({which})")
    if found.wait is None or found.wait.approval is None:
        raise KubehatchError(
            f"step {name!r} of run {run.name!r} does not wait for approval ({which})"
        )
    current = status.steps.get(name) or StepStatus()
    if current.phase is StepPhase.RUNNING:
        if phase is not None and phase.finished:  # pragma: no cover - the operator stops it
            raise KubehatchError(f"run {run.name!r} has finished ({phase.value})")
        return found
    if current.phase is StepPhase.PENDING:
        raise KubehatchError(
            f"step {name!r} of run {run.name!r} does not wait yet (Pending: the steps before "
            f"it have not finished); answer once it waits (kubehatch describe {run.name})"
        )
    said = f": {current.message}" if current.message else ""
    raise KubehatchError(
        f"step {name!r} of run {run.name!r} is not waiting: it is {current.phase.value}{said}"
    )


def whoami(client: Client) -> str:
    """The caller's user name, as the API server knows it (``kubectl auth whoami``)."""
    from kubernetes import client as k8s

    api = k8s.AuthenticationV1Api(client.api_client)
    with client._api_errors("create", "selfsubjectreviews.authentication.k8s.io"):
        review = api.create_self_subject_review(k8s.V1SelfSubjectReview())
    user = review.status.user_info if review.status else None
    if user is None or not user.username:
        raise KubehatchError("the cluster did not say who you are (kubectl auth whoami)")
    return str(user.username)


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """An admission policy's refusal as what it says, rather than as missing rights."""
    try:
        yield
    except ApiError as err:
        cause = err.__cause__
        if (
            err.status == 403
            and isinstance(cause, Exception)
            and "denied request" in str(getattr(cause, "body", ""))
        ):
            raise KubehatchError(f"approval refused: {status_message(cause)}") from cause
        raise
