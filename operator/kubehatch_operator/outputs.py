"""Step outputs: a watch of their appearance, and reading one back (`read_output`).

The watch is the earliest trustworthy sign that a step succeeded.

A step pod writes its output ConfigMap as its last act, after the step's code returned.
The Job says the same thing about two seconds later (the kubelet reports the container's
exit, then the Job controller batches pod updates before it sets a condition), so
children start from the output and the Job's condition only confirms it.

The watch asks for metadata only (PartialObjectMetadata: no output data crosses the
wire, but annotations do: the number of parts of a large output, which the store records
for the children's Jobs, and the mark of a spawn request, which tells it which outputs
to read for child runs), server-side filtered to step outputs' heads, from a fresh
resourceVersion (past outputs are of no use: the Jobs of finished steps say they
finished). Anything it misses, the Jobs' conditions still carry, so errors only cost
speed (and, for a large output, a child's Job that projects every possible part): it
reconnects with a backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubehatch.api import outputs, wire
from kubehatch.api.outputs import LABEL_OUTPUT_PART
from kubehatch_operator.metrics import API_READS
from kubehatch_operator.watching import Feed, Follower, Scope

SELECTOR = (
    f"{wire.LABEL_MANAGED_BY}={wire.MANAGED_BY},{wire.LABEL_STEP},{wire.LABEL_ATTEMPT},"
    f"!{LABEL_OUTPUT_PART}"
)
"""Step outputs' heads: the run's input ConfigMap has no step label, and the parts of a
large output (written before its head) are not news: the head is."""

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


async def read_output(core: client.CoreV1Api, namespace: str, configmap: str) -> Any:
    """The JSON value a step stored in its output ``configmap`` (``<job>-output``),
    whatever its form: plain, gzip-compressed, or split into parts (read as well,
    reassembled and checked against the head's digest; see kubehatch.api.outputs).
    None when the head holds no output key.

    Raises ``kubehatch.errors.OutputTooLargeError`` (attributes ``size``, ``limit``: bytes
    of JSON) for an output of more than ``outputs.MAX_OPERATOR_READ_BYTES`` (1 MiB) of
    JSON, which the operator does not read into memory: a split output is refused from
    its manifest before any part is read, a compressed one as soon as decompressing
    passes the limit. Its message names the ConfigMap and the sizes, for a caller to pass
    on (e.g. why a condition cannot read a parent's output). ``OutputCorruptError`` when
    parts are missing or do not match the digest; the client's ApiException (404) when
    the head does not exist.
    """

    async def get(name: str) -> Any:
        API_READS.labels("get", "configmaps").inc()
        return await asyncio.to_thread(core.read_namespaced_config_map, name, namespace)

    async def part(number: int) -> tuple[int, bytes | None]:
        try:
            body = await get(outputs.part_name(configmap, number))
        except ApiException as err:
            if err.status == 404:
                return number, None  # decode says which part is missing
            raise
        return number, outputs.from_configmap(None, body.binary_data).get(outputs.PART_KEY)

    head = await get(configmap)
    files = outputs.from_configmap(head.data, head.binary_data)
    what = f"the output in ConfigMap {namespace}/{configmap}"
    limit = outputs.MAX_OPERATOR_READ_BYTES
    manifest = outputs.manifest_of(files, what)
    parts: dict[int, bytes | None] = {}
    if manifest is not None and manifest.json_bytes <= limit:  # else decode refuses it
        parts = dict(await asyncio.gather(*(part(n) for n in range(1, manifest.parts + 1))))
    reader = outputs.OPERATOR_READER
    return outputs.decode(files, parts.get, what=what, limit=limit, reader=reader)
