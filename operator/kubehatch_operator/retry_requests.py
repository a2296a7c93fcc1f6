"""Carrying out `kubehatch retry`: finished runs labelled kubehatch.dev/retry.

The operator watches unfinished runs only (a field selector on status.phase), so a
retry request on a finished run would go unseen. The request therefore also carries a
label, and this module follows the (few) labelled runs: each one's status is reset (see
`retrying`), which makes it unfinished again, so the run watch brings it back to the
reconciler; then the label is removed. A request on a run that has not finished yet
waits: the label keeps it in this watch's selection until the run finishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from kubehatch.api import wire
from kubehatch.api.workflowrun import WorkflowRunSpec, WorkflowRunStatus
from kubehatch_operator.kube import Kube
from kubehatch_operator.model import Run
from kubehatch_operator.patches import merge_patch
from kubehatch_operator.retrying import retried, retry_message
from kubehatch_operator.watching import Feed, Follower, Scope

log = logging.getLogger(__name__)

Observe = Callable[[str, dict[str, Any]], None]


def retry_watch(api: client.ApiClient, namespaces: tuple[str, ...], observe: Observe) -> Follower:
    """A watch of labelled runs: each one is observed when it is listed, when the watch
    (re)starts, and on every change."""
    custom = client.CustomObjectsApi(api)
    loop = asyncio.get_running_loop()
    group, version, plural = wire.GROUP, wire.VERSION, wire.WORKFLOW_RUNS

    def request(scope: Scope, options: dict[str, Any]) -> Any:
        if scope is None:
            return custom.list_cluster_custom_object(group, version, plural, **options)
        return custom.list_namespaced_custom_object(group, version, scope, plural, **options)

    def listed(scope: Scope, last: str | None) -> str:
        """Resume, or list what is labelled (requests made while nobody watched)."""
        if last:
            return last
        found = request(scope, {"label_selector": wire.LABEL_RETRY})
        for item in found.get("items", []):
            loop.call_soon_threadsafe(observe, "ADDED", item)
        return str(found["metadata"]["resourceVersion"])

    feed = Feed("retry requests", request, wire.LABEL_RETRY, observe, listed)
    return Follower(feed, namespaces)


async def carry_out(kube: Kube, body: dict[str, Any]) -> None:
    """Reset a labelled finished run's status for its retry, then remove the label.

    A failure is logged; the label stays, and the next event or listing tries again."""
    try:
        await _carry_out(kube, body)
    except Exception:
        meta = body["metadata"]
        log.exception("run %s/%s: could not carry out its retry", meta["namespace"], meta["name"])


async def _carry_out(kube: Kube, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = WorkflowRunSpec.model_validate(body.get("spec") or {})
        status = WorkflowRunStatus.model_validate(body.get("status") or {})
    except ValidationError as err:
        log.warning("run %s/%s: cannot retry it: %s", namespace, name, err)
        return
    if status.phase is None or not status.phase.finished:
        return  # carried out once it finishes: the label keeps it in the watch
    request = spec.retry
    if request is not None and request.id != status.retry_id:
        run = Run(name, int(meta.get("generation") or 1), spec, status, meta.get("uid", ""))
        outcome = retried(run, request, datetime.now(UTC))
        if isinstance(outcome, str):
            await kube.post_event(body, "Warning", "RetryRefused", f"cannot retry: {outcome}")
            outcome = status.model_copy(update={"retry_id": request.id})
        else:
            await kube.post_event(body, "Normal", "Retried", retry_message(outcome))
        patch = merge_patch(status.to_dict(), outcome.to_dict())
        if await kube.patch_status(wire.WORKFLOW_RUNS, namespace, name, patch) is None:
            return  # deleted meanwhile
    # Carried out: the label goes (a run that is gone is done).
    await kube.patch_run(namespace, name, {"metadata": {"labels": {wire.LABEL_RETRY: None}}})
