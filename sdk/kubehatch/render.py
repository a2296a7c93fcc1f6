"""Render a Worker into Workflow resources, ready for ``kubectl apply -f -``."""

from __future__ import annotations

from typing import Any

import yaml

from kubehatch.api.workflow import Workflow
from kubehatch.worker import Worker

MANAGED_BY = {"app.kubernetes.io/managed-by": "kubehatch"}
WORKER_LABEL = "kubehatch.dev/worker"
WORKER_REF_ANNOTATION = "kubehatch.dev/worker-ref"
"""Where the step pods can import the worker from ("module:attribute")."""


def workflow_resources(worker: Worker, *, worker_ref: str | None = None) -> list[Workflow]:
    """One Workflow per registered workflow; raises RegistrationError listing all problems.

    ``worker_ref`` ("module:attribute"), when given, is recorded as an annotation so
    the operator knows what the step pods should load.
    """
    worker.check()
    annotations = {WORKER_REF_ANNOTATION: worker_ref} if worker_ref else None
    resources = []
    for workflow in worker.workflows:
        assert workflow.spec is not None  # check() passed, so every spec is valid
        resources.append(
            Workflow.new(
                workflow.name,
                workflow.spec,
                labels={**MANAGED_BY, WORKER_LABEL: worker.name},
                annotations=annotations,
            )
        )
    return resources


def _compact(value: Any) -> Any:
    """Drop empty lists and maps: they are the defaults and only add noise to YAML."""
    if isinstance(value, dict):
        pairs = ((key, _compact(item)) for key, item in value.items())
        return {key: item for key, item in pairs if item != [] and item != {}}
    if isinstance(value, list):
        return [_compact(item) for item in value]
    return value


def workflow_manifests(worker: Worker, *, worker_ref: str | None = None) -> list[dict[str, Any]]:
    """The Workflow resources as plain dicts (empty lists and maps left out)."""
    return [_compact(r.to_manifest()) for r in workflow_resources(worker, worker_ref=worker_ref)]


def render_yaml(worker: Worker, *, worker_ref: str | None = None) -> str:
    """The Workflow resources as a multi-document YAML stream."""
    documents = workflow_manifests(worker, worker_ref=worker_ref)
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True, width=100)
