"""A fake Kubernetes API server behind a real ``kubernetes.client.ApiClient``.

``FakeApiClient`` overrides only ``call_api`` (the HTTP request): the real generated
CustomObjectsApi / CoreV1Api, kubehatch's Client and the dashboard's Backend run on top of
it unchanged. It keeps objects in memory and answers lists with ``limit``/``continue``,
label selectors (``k=v``, ``k!=v``), field selectors (dotted paths, ``=``), watches (the
queued events, then the end of the stream, as a server-side timeout), metadata-only lists,
merge patches, pod logs, and 403s for the (verb, resource) pairs in ``denied``. ``calls``
records every request: (method, path, query).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes import client
from kubernetes.client import rest


class _Response:
    def __init__(self, status: int, body: Any, lines: list[bytes] | None = None) -> None:
        self.status = status
        self.reason = "OK" if status < 400 else "Error"
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = {"content-type": "application/json"}
        self._lines = lines
        self.closed = False

    def stream(self, amt: Any = None, decode_content: bool = True) -> Any:
        if self._lines is not None:
            yield from self._lines
        else:
            yield self.data

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


def _get(obj: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None  # type: ignore[assignment]
    return obj


def _matches_labels(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif labels.get(term) is None:
            return False
    return True


def _matches_fields(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, value = term.split("=", 1)
        if str(_get(obj, key) or "") != value:
            return False
    return True


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


ROUTE = re.compile(
    r"^/(?:apis/(?P<group>[^/]+)/(?P<version>[^/]+)|api/v1)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)


class FakeApiClient(client.ApiClient):
    def __init__(self) -> None:
        configuration = client.Configuration()
        configuration.host = "https://fake.invalid"
        super().__init__(configuration)
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self.logs: dict[tuple[str, str], str] = {}
        self.watch_events: list[dict[str, Any]] = []
        self.denied: set[tuple[str, str]] = set()
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.version = 100
        self._lock = threading.Lock()
        self._names = 0

    # --- seeding ----------------------------------------------------------------------
    def add(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("creationTimestamp", "2025-01-01T00:00:00Z")
        self.version += 1
        meta["resourceVersion"] = str(self.version)
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[(plural, meta["namespace"], meta["name"])] = obj
        return obj

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> rest.RESTResponse:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.calls.append((method, parts.path, query))
        with self._lock:
            status, answer, lines = self._answer(method, parts.path, query, body, header_params)
        return rest.RESTResponse(_Response(status, answer, lines))

    def _status(
        self, code: int, message: str, reason: str, **details: Any
    ) -> tuple[int, Any, None]:
        return (
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": message,
                "reason": reason,
                "details": details,
                "code": code,
            },
            None,
        )

    def _answer(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: Any
    ) -> tuple[int, Any, list[bytes] | None]:
        match = ROUTE.match(path)
        if not match:
            return self._status(404, f"no route {path}", "NotFound")
        ns, plural, name, sub = match["ns"], match["plural"], match["name"], match["sub"]
        verb = {"GET": "get" if name else "list", "POST": "create", "PATCH": "patch"}.get(
            method, ""
        )
        if query.get("watch") in ("true", "True", "1"):
            verb = "watch"
        resource = f"{plural}/{sub}" if sub else plural
        if (verb, resource) in self.denied:
            group = match["group"] or ""
            return self._status(
                403,
                f'{plural}.{group} "{name or ""}" is forbidden: User "viewer" cannot {verb} '
                f'resource "{plural}" in API group "{group}" in the namespace "{ns}"',
                "Forbidden",
                name=name,
                kind=plural,
            )
        if verb == "watch":
            events = [e for e in self.watch_events if e.get("plural", plural) == plural]
            self.watch_events = [e for e in self.watch_events if e not in events]
            lines = [
                json.dumps({"type": e["type"], "object": e["object"]}).encode() + b"\n"
                for e in events
            ]
            return 200, b"", lines
        if verb == "list":
            return self._list(plural, ns, query, headers or {})
        if sub == "log":
            text = self.logs.get((ns, name), "")
            return 200, text.encode(), [text.encode()]
        key = (plural, ns, name)
        if verb == "create":
            obj = json.loads(json.dumps(body))
            meta = obj.setdefault("metadata", {})
            if not meta.get("name"):
                self._names += 1
                meta["name"] = f"{meta.get('generateName', 'x-')}{self._names:05d}"
            meta["namespace"] = ns
            if (plural, ns, meta["name"]) in self.objects:
                return self._status(409, "exists", "AlreadyExists", name=meta["name"])
            return 201, self.add(plural, obj), None
        if key not in self.objects:
            return self._status(404, f'{plural} "{name}" not found', "NotFound", name=name)
        if verb == "patch":
            _merge(self.objects[key], body)
            self.version += 1
            self.objects[key]["metadata"]["resourceVersion"] = str(self.version)
        return 200, self.objects[key], None

    def _list(
        self, plural: str, ns: str | None, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any, None]:
        found = [
            obj
            for (p, n, _), obj in sorted(self.objects.items())
            if p == plural
            and (ns is None or n == ns)
            and _matches_labels(obj["metadata"].get("labels") or {}, query.get("labelSelector", ""))
            and _matches_fields(obj, query.get("fieldSelector", ""))
        ]
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(found)
        page = found[start : start + limit]
        more = start + limit < len(found)
        if "PartialObjectMetadataList" in str(headers.get("Accept", "")):
            page = [{"metadata": obj["metadata"]} for obj in page]
        metadata: dict[str, Any] = {"resourceVersion": str(self.version)}
        if more:
            metadata["continue"] = str(start + limit)
            metadata["remainingItemCount"] = len(found) - start - limit
        return 200, {"items": page, "metadata": metadata}, None


def run(
    name: str,
    workflow: str = "etl",
    *,
    namespace: str = "default",
    phase: str | None = None,
    created: str = "2025-01-01T00:00:00Z",
    steps: dict[str, Any] | None = None,
    spec_steps: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    """A WorkflowRun object as the API server would hold it."""
    body: dict[str, Any] = {
        "apiVersion": "kubehatch.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "labels": {"kubehatch.dev/workflow": workflow},
            "managedFields": [{"manager": "noise"}],
        },
        "spec": {"workflowRef": {"name": workflow}, "input": {"n": 1}},
    }
    if phase is not None or steps is not None or status:
        body["status"] = {"phase": phase, "steps": steps or {}, **status}
        if spec_steps is not None:
            body["status"]["workflowSpec"] = {"steps": spec_steps}
    return body
