"""Running a run again: ``retry`` (the same run, from its failed steps) and ``replay``
(a new run with the same input). Methods of :class:`kubehatch.client.Client`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Protocol

from kubehatch.api import wire
from kubehatch.api.workflowrun import TriggeredBy, TriggerType, WorkflowRun
from kubehatch.errors import KubehatchError


class Client(Protocol):
    """What of :class:`kubehatch.client.Client` these use."""

    namespace: str

    def get_run(self, name: str) -> WorkflowRun: ...
    def _patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def _create(self, plural: str, body: dict[str, Any]) -> str: ...


def retry(self: Client, name: str, from_step: str | None = None) -> str:
    """Run the finished run ``name`` again from its failed steps (or from ``from_step``
    and every step after it), keeping the outputs of the steps that succeeded.

    The run takes the Workflow as it is now (a fixed image, say); attempt numbers keep
    growing and each step's retries count afresh. Refused, creating nothing, for a run
    that has not finished, was cancelled, succeeded (without ``from_step``) or has no
    step ``from_step``. Returns the request's id: the run's ``status.retryId`` once the
    operator carried it out (see :func:`wait_retried`).
    """
    run = self.get_run(name)
    status = run.status
    phase = status.phase if status else None
    if phase is None or not phase.finished:
        raise KubehatchError(
            f"run {name!r} has not finished ({phase or 'Pending'}); retry it once it has "
            f"(kubehatch wait {name})"
        )
    if run.spec.cancel:
        raise KubehatchError(
            f"run {name!r} was cancelled, and a cancelled run cannot run again; "
            f"start a new one with the same input: kubehatch replay {name}"
        )
    assert status is not None
    steps = list(status.steps)
    if from_step is not None and from_step not in steps:
        raise KubehatchError(
            f"run {name!r} has no step {from_step!r} (steps: {', '.join(steps) or 'none'})"
        )
    if from_step is None and phase.value == "Succeeded":
        raise KubehatchError(
            f"run {name!r} succeeded, so no step failed; name a step to run again from: "
            f"kubehatch retry {name} --from STEP"
        )
    request = {"id": datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"), "fromStep": from_step}
    self._patch(
        wire.WORKFLOW_RUNS,
        name,
        {"metadata": {"labels": {wire.LABEL_RETRY: "requested"}}, "spec": {"retry": request}},
    )
    return str(request["id"])


def wait_retried(client: Client, name: str, request: str, timeout: float = 60) -> None:
    """Wait until the operator has carried out retry ``request`` of run ``name``."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get_run(name).status
        if status is not None and status.retry_id == request:
            return
        if time.monotonic() > deadline:
            raise KubehatchError(
                f"the operator did not pick up the retry of run {name!r} within {timeout:.0f}s; "
                "is it running? (kubectl get pods -A -l app.kubernetes.io/name=kubehatch)"
            )
        time.sleep(0.5)


def replay(self: Client, name: str) -> str:
    """Start a new run of the same Workflow with the same input, priority and metadata as
    run ``name``; returns the new run's name (labelled with the run it repeats)."""
    run = self.get_run(name)
    workflow = run.spec.workflow_ref.name
    body = WorkflowRun.of(
        workflow,
        run.spec.input,
        triggered_by=TriggeredBy(type=TriggerType.MANUAL, source=f"replay of {name}"),
        labels={wire.LABEL_REPLAY_OF: wire.label_value(name)},
        priority=run.spec.priority,
        additional_metadata=run.spec.additional_metadata,
    ).to_manifest()
    return self._create(wire.WORKFLOW_RUNS, body)
