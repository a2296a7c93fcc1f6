"""The dashboard's reads and actions, each one call (or a few) to the Kubernetes API made
with the caller's credentials: a denied call is the API server's denial, passed on.

Lists page with the API server's ``limit`` and ``continue``, and filter with its label and
field selectors (``spec.workflowRef.name`` and ``status.phase`` are selectable fields of
the CRD), so a namespace with 10,000 runs costs one page per request, never the whole list.
Only the time filter (creation time) is ours: it scans at most :data:`SCAN_BUDGET` runs
per request and hands back the continue token where it stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubehatch import _apierrors
from kubehatch.api import outputs, wire
from kubehatch.client import Client
from kubehatch.errors import KubehatchError
from kubehatch.ui import views

PAGE = 50
MAX_PAGE = 500
SCAN_BUDGET = 2000
"""Runs one time-filtered request reads at most before answering with what it found."""
RECENT_SCAN = 2000
"""Runs (metadata only) read to find a workflow's latest runs."""
OUTPUT_SHOWN = 2 * outputs.MIB
"""The largest output (JSON bytes) the run page shows; larger ones are summarised."""
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


class UiError(Exception):
    """A failed request: the HTTP status to answer, our one line, the API server's words."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason

    def as_json(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status, "reason": self.reason}


def as_ui_error(err: Exception) -> UiError:
    """A Client failure (ApiError, an invalid input...) as a UiError."""
    if isinstance(err, UiError):
        return err
    status = getattr(err, "status", None)
    cause = err.__cause__
    reason = _apierrors.status_message(cause) if isinstance(cause, Exception) else None
    if isinstance(err, KubehatchError):
        return UiError(status if isinstance(status, int) else 400, str(err), reason or None)
    return UiError(502, f"unexpected error: {type(err).__name__}: {err}")


@dataclass
class Page:
    items: list[dict[str, Any]]
    continue_token: str | None
    resource_version: str | None
    remaining: int | None = None
    scanned: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "continue": self.continue_token,
            "resourceVersion": self.resource_version,
            "remaining": self.remaining,
            "scanned": self.scanned,
            **self.extra,
        }


class Backend:
    """The API over one set of credentials (an ApiClient), for one request or many."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.host = str(getattr(api_client.configuration, "host", "") or "the API server")

    def client(self, namespace: str) -> Client:
        return Client(namespace, api_client=self.api_client)

    @contextlib.contextmanager
    def calling(
        self, verb: str, plural: str, namespace: str | None, name: str | None = None
    ) -> Iterator[None]:
        """API errors as UiErrors: our line (what failed, what to do) and the server's."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            yield
        except (ApiException, HTTPError) as err:
            where = namespace or "(all namespaces)"
            explained = _apierrors.explain(err, verb, plural, name, where, self.host)
            status = explained.status or 502
            reason = _apierrors.status_message(err) if explained.status else None
            raise UiError(status, str(explained), reason or None) from err

    # --- lists ----------------------------------------------------------------------------
    def list_page(
        self,
        plural: str,
        namespace: str | None,
        *,
        limit: int,
        token: str | None = None,
        labels: str = "",
        fields: str = "",
        metadata_only: bool = False,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {"limit": limit, "label_selector": labels}
        if fields:
            options["field_selector"] = fields
        if token:
            options["_continue"] = token
        if metadata_only:
            options["_headers"] = {"Accept": METADATA_LIST}
        with self.calling("list", plural, namespace):
            if namespace:
                answer = self.custom.list_namespaced_custom_object(
                    wire.GROUP, wire.VERSION, namespace, plural, **options
                )
            else:
                answer = self.custom.list_cluster_custom_object(
                    wire.GROUP, wire.VERSION, plural, **options
                )
        return wire.mapping(answer)

    def runs(
        self,
        namespace: str | None,
        *,
        workflow: str | None = None,
        phase: str | None = None,
        selector: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = PAGE,
        token: str | None = None,
    ) -> Page:
        """One page of runs (summaries, newest first within the page)."""
        limit = max(1, min(limit, MAX_PAGE))
        fields = views.field_selector(workflow, phase)
        found: list[dict[str, Any]] = []
        scanned, version, remaining = 0, None, None
        while True:
            answer = self.list_page(
                wire.WORKFLOW_RUNS, namespace, limit=limit, token=token, labels=selector,
                fields=fields,
            )  # fmt: skip
            meta = wire.mapping(answer.get("metadata"))
            version = version or meta.get("resourceVersion")
            token = meta.get("continue") or None
            remaining = meta.get("remainingItemCount")
            items = [wire.mapping(i) for i in answer.get("items") or []]
            scanned += len(items)
            found.extend(
                views.run_summary(i) for i in items if views.created_between(i, since, until)
            )
            if not token or len(found) >= limit or scanned >= SCAN_BUDGET:
                break
        return Page(views.sort_newest_first(found), token, version, remaining, scanned)

    def recent_runs(self, namespace: str, workflow: str, count: int = 5) -> Page:
        """The latest ``count`` runs of a workflow: found from the runs' metadata alone
        (creation times, a fraction of the objects), then read one by one."""
        stamps: list[tuple[str, str]] = []
        token: str | None = None
        fields = views.field_selector(workflow, None)
        while len(stamps) < RECENT_SCAN:
            answer = self.list_page(
                wire.WORKFLOW_RUNS, namespace, limit=MAX_PAGE, token=token, fields=fields,
                metadata_only=True,
            )  # fmt: skip
            for item in answer.get("items") or []:
                meta = wire.mapping(wire.mapping(item).get("metadata"))
                stamps.append((str(meta.get("creationTimestamp") or ""), str(meta.get("name"))))
            token = wire.mapping(answer.get("metadata")).get("continue") or None
            if not token:
                break
        newest = sorted(stamps, reverse=True)[:count]
        rows = []
        for _, name in newest:
            with self.calling("get", wire.WORKFLOW_RUNS, namespace, name):
                try:
                    obj = self.custom.get_namespaced_custom_object(
                        wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_RUNS, name
                    )
                except Exception as err:
                    if getattr(err, "status", None) == 404:  # deleted meanwhile
                        continue
                    raise
            rows.append(views.run_summary(wire.mapping(obj)))
        return Page(rows, None, None, scanned=len(stamps), extra={"partial": token is not None})

    def workflows(self, namespace: str | None, token: str | None = None) -> Page:
        """One page of Workflows, with the count of queued runs of each."""
        answer = self.list_page(wire.WORKFLOWS, namespace, limit=MAX_PAGE, token=token)
        meta = wire.mapping(answer.get("metadata"))
        items = [views.workflow_summary(wire.mapping(i)) for i in answer.get("items") or []]
        items.sort(key=lambda w: (str(w["namespace"]), str(w["name"])))
        queued: dict[str, int] = {}
        with contextlib.suppress(UiError):  # may read Workflows but not runs: no counts
            runs = self.list_page(
                wire.WORKFLOW_RUNS, namespace, limit=MAX_PAGE, fields="status.phase=Queued",
                metadata_only=False,
            )  # fmt: skip
            for run in runs.get("items") or []:
                row = views.run_summary(wire.mapping(run))
                key = f"{row['namespace']}/{row['workflow']}"
                queued[key] = queued.get(key, 0) + 1
        for item in items:
            item["queued"] = queued.get(f"{item['namespace']}/{item['name']}", 0)
        return Page(items, meta.get("continue") or None, meta.get("resourceVersion"))

    def events(self, namespace: str | None, token: str | None = None, limit: int = PAGE) -> Page:
        """One page of WorkflowEvents, each with the runs it started."""
        answer = self.list_page(wire.WORKFLOW_EVENTS, namespace, limit=limit, token=token)
        meta = wire.mapping(answer.get("metadata"))
        items = [views.event_summary(wire.mapping(i)) for i in answer.get("items") or []]
        return Page(
            views.sort_newest_first(items),
            meta.get("continue") or None,
            meta.get("resourceVersion"),
            meta.get("remainingItemCount"),
        )

    # --- one run --------------------------------------------------------------------------
    def get_run(self, namespace: str, name: str) -> dict[str, Any]:
        with self.calling("get", wire.WORKFLOW_RUNS, namespace, name):
            answer = self.custom.get_namespaced_custom_object(
                wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_RUNS, name
            )
        return views.lean(wire.mapping(answer))

    def run(self, namespace: str, name: str) -> dict[str, Any]:
        """The run, and the Workflow spec its DAG comes from: the snapshot taken when it
        started, else (Pending, Queued) the Workflow as it is now, if readable."""
        run = self.get_run(namespace, name)
        spec = wire.mapping(run.get("status")).get("workflowSpec")
        source = "snapshot" if spec else None
        if not spec:
            workflow = wire.mapping(wire.mapping(run.get("spec")).get("workflowRef")).get("name")
            with contextlib.suppress(UiError):
                with self.calling("get", wire.WORKFLOWS, namespace, workflow):
                    found = self.custom.get_namespaced_custom_object(
                        wire.GROUP, wire.VERSION, namespace, wire.WORKFLOWS, str(workflow)
                    )
                spec, source = wire.mapping(found).get("spec"), "current"
        return {"run": run, "workflowSpec": spec, "workflowSource": source}

    def run_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The Kubernetes Events about the run (the operator posts its decisions)."""
        with self.calling("list", "events", namespace):
            found = self.core.list_namespaced_event(
                namespace, field_selector=f"involvedObject.name={name}", limit=200
            )
        rows = [views.kube_event(e) for e in found.items]
        return sorted(rows, key=lambda e: str(e["time"] or ""))

    def step_output(self, namespace: str, configmap: str, limit: int = OUTPUT_SHOWN) -> Any:
        """A step's output, from its ConfigMap(s), decoded (gzip, parts) as a step would."""

        def read(name: str) -> dict[str, bytes] | None:
            with self.calling("get", "configmaps", namespace, name):
                try:
                    cm = self.core.read_namespaced_config_map(name, namespace)
                except Exception as err:
                    if getattr(err, "status", None) == 404:
                        return None
                    raise
            binary = {k: str(v) for k, v in (cm.binary_data or {}).items()}
            return outputs.from_configmap(cm.data, binary)

        head = read(configmap)
        if head is None:
            raise UiError(404, f"the output ConfigMap {configmap!r} is gone (the run was cleaned)")

        def part(number: int) -> bytes | None:
            found = read(outputs.part_name(configmap, number))
            return None if found is None else found.get(outputs.PART_KEY)

        try:
            value = outputs.decode(
                head, part, what=f"output {configmap!r}", limit=limit, reader="the dashboard"
            )
        except KubehatchError as err:  # too large to show, or corrupt: say so
            return {"error": str(err)}
        return {"output": value}

    # --- actions --------------------------------------------------------------------------
    def start_run(self, namespace: str, workflow: str, data: dict[str, Any]) -> str:
        return self.client(namespace).run(workflow, data)

    def cancel(self, namespace: str, name: str) -> None:
        self.client(namespace).cancel(name)

    def retry(self, namespace: str, name: str, from_step: str | None) -> str:
        return self.client(namespace).retry(name, from_step)

    def replay(self, namespace: str, name: str) -> str:
        return self.client(namespace).replay(name)

    def push_event(self, namespace: str, key: str, payload: dict[str, Any]) -> str:
        return self.client(namespace).event.push(key, payload)
