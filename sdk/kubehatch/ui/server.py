"""The dashboard's HTTP server: static pages, the JSON API, server-sent events.

Routes (``NS``: a namespace; ``namespace=`` empty or ``*`` in a query: all namespaces):

- ``GET /api/config``; ``GET /api/workflows``; ``GET /api/workflows/NS/NAME/runs`` (latest);
- ``GET /api/runs?workflow=&phase=&selector=&since=&until=&limit=&continue=``: one page;
- ``GET /api/runs/NS/NAME`` (+ ``/events``, ``/steps/STEP/output``); ``GET /api/events``;
- server-sent events: ``GET /api/watch/runs?...`` (the list's rows), ``GET
  /api/watch/runs/NS/NAME`` (a run), ``GET /api/logs/NS/RUN/STEP?pod=`` (a log, followed);
- actions: ``POST /api/runs/NS`` (start), ``POST /api/runs/NS/NAME/{cancel,retry,replay}``,
  ``POST /api/events/NS`` (push); ``POST``/``DELETE /api/session`` (sign in with a token).

Requests that change anything must carry ``X-Kubehatch-Request`` (which a cross-site form
cannot send, nor a cross-origin script without a CORS answer we never give); on loopback,
the ``Host`` must be a loopback name (no DNS rebinding).
"""

from __future__ import annotations

import json
import mimetypes
import re
import socket
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from kubehatch.api import wire
from kubehatch.ui import STATIC, live, views
from kubehatch.ui.access import COOKIE
from kubehatch.ui.backend import Backend, UiError, as_ui_error

MAX_BODY = 2 * 1024 * 1024
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
}
SEGMENT = r"([^/]+)"


class Access(Protocol):
    namespace: str
    tokens: bool
    user: str | None

    def backend(self, headers: Any) -> Backend: ...


class Settings:
    def __init__(self, access: Access, *, all_namespaces: bool, loopback: bool) -> None:
        self.access = access
        self.all_namespaces = all_namespaces
        self.loopback = loopback


Route = tuple[str, re.Pattern[str], str]
ROUTES: list[Route] = [
    (m, re.compile(f"^{p.replace('{}', SEGMENT)}$"), h)
    for m, p, h in [
        ("GET", "/api/config", "config"),
        ("GET", "/api/workflows", "workflows"),
        ("GET", "/api/workflows/{}/{}/runs", "recent"),
        ("GET", "/api/runs", "runs"),
        ("GET", "/api/runs/{}/{}", "run"),
        ("GET", "/api/runs/{}/{}/events", "run_events"),
        ("GET", "/api/runs/{}/{}/steps/{}/output", "output"),
        ("GET", "/api/events", "events"),
        ("GET", "/api/watch/runs", "watch_runs"),
        ("GET", "/api/watch/runs/{}/{}", "watch_run"),
        ("GET", "/api/logs/{}/{}/{}", "logs"),
        ("POST", "/api/runs/{}", "start"),
        ("POST", "/api/runs/{}/{}/{}", "act"),
        ("POST", "/api/events/{}", "push"),
        ("POST", "/api/session", "sign_in"),
        ("DELETE", "/api/session", "sign_out"),
    ]
]


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    found = wire.parse_time(value)
    if found is None:
        raise UiError(400, f"{name}: give an RFC 3339 time with a zone, e.g. 2025-01-31T12:00:00Z")
    return found


class Handler(BaseHTTPRequestHandler):
    server_version = "kubehatch-ui"
    protocol_version = "HTTP/1.1"
    settings: Settings  # set on the server's subclass

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pages poll nothing
        pass

    # --- plumbing -------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in {**HEADERS, **extra}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        headers = {"Cache-Control": "no-store", **(extra or {})}
        self._reply(status, body, "application/json", headers)

    def _query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _namespace(self, query: dict[str, str]) -> str | None:
        if "namespace" not in query:
            return None if self.settings.all_namespaces else self.settings.access.namespace
        value = query["namespace"].strip()
        return None if value in ("", "*") else value

    def _body(self) -> dict[str, Any]:
        size = int(self.headers.get("Content-Length") or 0)
        if size > MAX_BODY:
            raise UiError(413, f"the request is over {MAX_BODY} bytes")
        try:
            data = json.loads(self.rfile.read(size) or b"{}")
        except ValueError as err:
            raise UiError(400, f"the request is not JSON: {err}") from err
        if not isinstance(data, dict):
            raise UiError(400, "the request must be a JSON object")
        return data

    def _allowed_host(self) -> bool:
        if not self.settings.loopback:
            return True
        host = (self.headers.get("Host") or "").strip()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.lower() in LOOPBACK_NAMES

    def _backend(self) -> Backend:
        return self.settings.access.backend(self.headers)

    # --- dispatch -------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        if not self._allowed_host():
            self._json({"error": "unexpected Host header"}, 421)
            return
        path = urlsplit(self.path).path
        method = "GET" if self.command == "HEAD" else self.command
        try:
            if not path.startswith("/api/"):
                if method != "GET":
                    raise UiError(405, "method not allowed")
                self._static(path)
                return
            if method != "GET" and not self.headers.get("X-Kubehatch-Request"):
                raise UiError(403, "a request that changes something needs X-Kubehatch-Request")
            for verb, pattern, name in ROUTES:
                match = pattern.match(path)
                if verb == method and match:
                    args = [unquote(a) for a in match.groups()]
                    getattr(self, f"api_{name}")(*args)
                    return
            raise UiError(404, f"no such API: {method} {path}")
        except UiError as err:
            self._json(err.as_json(), err.status)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:
            failure = as_ui_error(err)
            self._json(failure.as_json(), failure.status)

    def _static(self, path: str) -> None:
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        root = STATIC.resolve()
        file = (root / name).resolve()
        if not path.startswith(("/static/", "/")) or root not in file.parents or not file.is_file():
            raise UiError(404, f"no such page: {path}")
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if file.suffix == ".js":
            kind = "text/javascript"
        self._reply(200, file.read_bytes(), f"{kind}; charset=utf-8", {"Cache-Control": "no-cache"})

    def _events(self, producer: Callable[[live.Stream], None]) -> None:
        stream = live.Stream()
        streams: set[live.Stream] = getattr(self.server, "streams", set())
        streams.add(stream)
        stream.closing(lambda: streams.discard(stream))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")  # behind nginx: do not buffer
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def write(data: bytes) -> None:
            self.wfile.write(data)
            self.wfile.flush()

        stream.start(producer)
        stream.pump(write)

    # --- reads ----------------------------------------------------------------------------
    def api_config(self) -> None:
        access = self.settings.access
        self._json({
            "namespace": None if self.settings.all_namespaces else access.namespace,
            "defaultNamespace": access.namespace,
            "allNamespaces": self.settings.all_namespaces,
            "tokens": access.tokens,
            "user": access.user,
        })  # fmt: skip

    def api_workflows(self) -> None:
        query = self._query()
        page = self._backend().workflows(self._namespace(query), query.get("continue"))
        self._json(page.as_json())

    def api_recent(self, namespace: str, workflow: str) -> None:
        count = int(self._query().get("count") or 5)
        self._json(self._backend().recent_runs(namespace, workflow, min(count, 20)).as_json())

    def api_runs(self) -> None:
        q = self._query()
        page = self._backend().runs(
            self._namespace(q),
            workflow=q.get("workflow") or None,
            phase=q.get("phase") or None,
            selector=q.get("selector") or "",
            since=_time(q.get("since"), "since"),
            until=_time(q.get("until"), "until"),
            limit=int(q.get("limit") or 50),
            token=q.get("continue") or None,
        )
        self._json(page.as_json())

    def api_run(self, namespace: str, name: str) -> None:
        self._json(self._backend().run(namespace, name))

    def api_run_events(self, namespace: str, name: str) -> None:
        self._json({"items": self._backend().run_events(namespace, name)})

    def api_output(self, namespace: str, name: str, step: str) -> None:
        backend = self._backend()
        status = wire.mapping(backend.get_run(namespace, name).get("status"))
        configmap = wire.mapping(wire.mapping(status.get("steps")).get(step)).get("outputConfigMap")
        if not configmap:
            self._json({"output": None, "none": True})
            return
        self._json(backend.step_output(namespace, str(configmap)))

    def api_events(self) -> None:
        query = self._query()
        page = self._backend().events(self._namespace(query), query.get("continue"))
        self._json(page.as_json())

    # --- live -----------------------------------------------------------------------------
    def api_watch_runs(self) -> None:
        q, backend = self._query(), self._backend()
        namespace = self._namespace(q)
        fields = views.field_selector(q.get("workflow") or None, q.get("phase") or None)
        labels, version = q.get("selector") or "", q.get("resourceVersion") or None
        self._events(
            lambda s: live.follow_runs(
                backend, namespace, s, labels=labels, fields=fields, version=version
            )
        )

    def api_watch_run(self, namespace: str, name: str) -> None:
        backend = self._backend()
        backend.get_run(namespace, name)  # a 403 or 404 answers as such, not as a stream
        self._events(lambda s: live.follow_run(backend, namespace, name, s))

    def api_logs(self, namespace: str, run: str, step: str) -> None:
        backend, pod = self._backend(), self._query().get("pod") or None
        self._events(lambda s: live.follow_logs(backend, namespace, run, step, pod, s))

    # --- actions --------------------------------------------------------------------------
    def api_start(self, namespace: str) -> None:
        body = self._body()
        workflow, data = str(body.get("workflow") or ""), body.get("input") or {}
        if not workflow or not isinstance(data, dict):
            raise UiError(400, "give a workflow and an input object")
        name = self._backend().start_run(namespace, workflow, data)
        self._json({"name": name, "namespace": namespace}, 201)

    def api_act(self, namespace: str, name: str, action: str) -> None:
        backend = self._backend()
        if action == "cancel":
            backend.cancel(namespace, name)
            self._json({"name": name, "cancelRequested": True})
        elif action == "retry":
            from_step = self._body().get("fromStep") or None
            self._json({"name": name, "retry": backend.retry(namespace, name, from_step)})
        elif action == "replay":
            self._json({"name": backend.replay(namespace, name), "namespace": namespace}, 201)
        else:
            raise UiError(404, f"no action {action!r}: cancel, retry or replay")

    def api_push(self, namespace: str) -> None:
        body = self._body()
        key, payload = str(body.get("key") or ""), body.get("payload") or {}
        if not key or not isinstance(payload, dict):
            raise UiError(400, "give an event key and a payload object")
        self._json({"name": self._backend().push_event(namespace, key, payload)}, 201)

    def api_sign_in(self) -> None:
        if not self.settings.access.tokens:
            raise UiError(400, "this dashboard uses your kubeconfig: there is nothing to sign in")
        token = str(self._body().get("token") or "").strip()
        if not token:
            raise UiError(400, "paste a Kubernetes bearer token")
        secure = "; Secure" if self.headers.get("X-Forwarded-Proto") == "https" else ""
        cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}"
        self._json({"signedIn": True}, extra={"Set-Cookie": cookie})

    def api_sign_out(self) -> None:
        cookie = f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        self._json({"signedIn": False}, extra={"Set-Cookie": cookie})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streams: set[live.Stream] = set()
        """Open event streams: closing the server ends them (their watches too)."""

    def server_close(self) -> None:
        super().server_close()
        for stream in list(self.streams):
            stream.stop()


def make_server(access: Access, address: str, port: int, *, all_namespaces: bool = False) -> Server:
    """A server bound to ``address:port`` (port 0: any free one); call serve_forever()."""
    loopback = address in ("127.0.0.1", "::1", "localhost") or address.startswith("127.")
    handler = type(
        "BoundHandler",
        (Handler,),
        {"settings": Settings(access, all_namespaces=all_namespaces, loopback=loopback)},
    )
    kind = Server6 if ":" in address else Server
    return kind((address, port), handler)


class Server6(Server):
    address_family = socket.AF_INET6
