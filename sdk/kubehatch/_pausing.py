"""Suspending and resuming a run: methods of :class:`kubehatch.client.Client`."""

from __future__ import annotations

from typing import Any, Protocol

from kubehatch.api import wire
from kubehatch.api.workflowrun import WorkflowRun
from kubehatch.errors import KubehatchError


class Client(Protocol):
    """What of :class:`kubehatch.client.Client` these use."""

    def get_run(self, name: str) -> WorkflowRun: ...
    def _patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


def suspend(self: Client, name: str) -> None:
    """Stop starting steps of run ``name`` (retries and forEach items too); the steps that
    run go on to their end. The run's timeout still counts. Undo with :func:`resume`."""
    _set(self, name, True)


def resume(self: Client, name: str) -> None:
    """Let a suspended run start steps again."""
    _set(self, name, False)


def _set(client: Client, name: str, suspended: bool) -> None:
    run = client.get_run(name)
    phase = run.status.phase if run.status else None
    if phase is not None and phase.finished:
        raise KubehatchError(f"run {name!r} has finished ({phase.value}); nothing to suspend")
    client._patch(wire.WORKFLOW_RUNS, name, {"spec": {"suspend": suspended}})
