"""Render a Worker into Workflow resources, ready for ``kubectl apply -f -``."""

from __future__ import annotations

from typing import Any

import yaml

from kubehatch.api import wire
from kubehatch.api.workflow import Workflow
from kubehatch.worker import Worker


def workflow_resources(
    worker: Worker, *, worker_ref: str | None = None, image: str | None = None
) -> list[Workflow]:
    """One Workflow per registered workflow; raises RegistrationError listing all problems.

    ``worker_ref`` ("module:attribute"), when given, becomes ``spec.worker``: what the
    step pods import to find the actions (else the image's KUBEHATCH_WORKER). ``image``
    replaces the workflows' default image (e.g. with the tag of a freshly built one).
    """
    worker.check()
    resources = []
    for workflow in worker.workflows:
        assert workflow.spec is not None  # check() passed, so every spec is valid
        overrides = {"worker": worker_ref, "image": image}
        spec = workflow.spec.model_copy(update={k: v for k, v in overrides.items() if v})
        resources.append(
            Workflow.new(
                workflow.name,
                spec,
                labels={wire.LABEL_MANAGED_BY: wire.MANAGED_BY, wire.LABEL_WORKER: worker.name},
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


def workflow_manifests(
    worker: Worker, *, worker_ref: str | None = None, image: str | None = None
) -> list[dict[str, Any]]:
    """The Workflow resources as plain dicts (empty lists and maps left out)."""
    resources = workflow_resources(worker, worker_ref=worker_ref, image=image)
    return [_compact(r.to_manifest()) for r in resources]


def render_yaml(worker: Worker, *, worker_ref: str | None = None, image: str | None = None) -> str:
    """The Workflow resources as a multi-document YAML stream."""
    documents = workflow_manifests(worker, worker_ref=worker_ref, image=image)
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True, width=100)
