"""A watch of step outputs: the earliest trustworthy sign that a step succeeded.

A step pod writes its output ConfigMap as its last act, after the step's code returned.
The Job says the same thing about two seconds later (the kubelet reports the container's
exit, then the Job controller batches pod updates before it sets a condition), so
children start from the output and the Job's condition only confirms it.

The watch asks for metadata only (PartialObjectMetadata: no output data crosses the wire),
server-side filtered to step outputs, from a fresh resourceVersion (past outputs are of
no use: the Jobs of finished steps say they finished). Anything it misses, the Jobs'
conditions still carry, so errors only cost speed: it reconnects with a backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from kubehatch.api import wire
from kubehatch_operator.watching import Feed, Follower, Scope

SELECTOR = f"{wire.LABEL_MANAGED_BY}={wire.MANAGED_BY},{wire.LABEL_STEP},{wire.LABEL_ATTEMPT}"
"""Step outputs: the run's input ConfigMap has no step label."""

METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

Observe = Callable[[dict[str, Any]], None]
"""Called on the event loop with the metadata of each output ConfigMap that appears."""


def output_watch(api: client.ApiClient, namespaces: tuple[str, ...], observe: Observe) -> Follower:
    """A watch of step outputs' appearance, from now on (see the module's docstring)."""
    core = client.CoreV1Api(api)

    def request(scope: Scope, options: dict[str, Any]) -> Any:
        if scope is None:
            return core.list_config_map_for_all_namespaces(**options)
        return core.list_namespaced_config_map(scope, **options)

    def now(scope: Scope, _last: str | None) -> str:
        """The current resourceVersion (from a list of at most one object): past outputs
        are of no use, and anything missed the Jobs' conditions still carry."""
        listed = request(scope, {"label_selector": SELECTOR, "limit": 1})
        return str(listed.metadata.resource_version) if listed.metadata else ""

    def created(kind: str, obj: dict[str, Any]) -> None:
        if kind == "ADDED":
            observe(obj.get("metadata") or {})

    feed = Feed("step outputs", request, SELECTOR, created, now, {"Accept": METADATA_ONLY})
    return Follower(feed, namespaces)
