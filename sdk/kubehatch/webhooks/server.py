"""The HTTP receiver: ``POST /webhooks/<source>`` -> a WorkflowEvent, ``GET /healthz``.

Standard library only (:class:`http.server.ThreadingHTTPServer`): one thread per request,
each bounded by a socket timeout, bodies bounded by ``maxBodyBytes``. A request is
checked in this order, so that nothing is parsed before it is known to be the sender's:

1. the source exists (404), the method is POST (405);
2. ``Content-Length`` is given (411) and within the limit (413, the body is not read);
3. the signature matches (401: missing, malformed, wrong, or a stale Stripe timestamp);
4. the body is a JSON object (400) and has the event key (422);
5. the event is created (202 with its name; 422 if the key or payload is refused, 503 if
   the API server or the signing secret is unavailable: senders retry 5xx).

Every error is ``{"error": "...", "source": "..."}``.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from kubehatch._apierrors import ApiError
from kubehatch.api.inputschema import InvalidInputError
from kubehatch.errors import KubehatchError
from kubehatch.webhooks.config import SecretRef, Source, WebhookConfig
from kubehatch.webhooks.verify import Headers, Rejected, event_key, json_body, pick, verify

log = logging.getLogger("kubehatch.webhooks")

PREFIX = "/webhooks/"
HEALTH = "/healthz"
SOURCE_METADATA = "webhook-source"
DELIVERY_METADATA = "webhook-delivery"
"""Keys of the event's additional metadata (copied onto the runs it starts)."""
REQUEST_TIMEOUT = 10.0
"""Seconds a connection may sit idle (headers or body)."""
BODY_DEADLINE = 30.0
"""Seconds a body may take to arrive in all: a sender trickling bytes cannot hold a thread."""

SecretReader = Callable[[SecretRef], bytes]
"""The signing secret a source names; raises Rejected (503) when it cannot be read."""
Pusher = Callable[[str | None, str, dict[str, Any], dict[str, str]], str]
"""``(namespace or None for the receiver's, key, payload, metadata) -> event name``: creates
the WorkflowEvent (``Client.event.push``)."""


@dataclass
class Receiver:
    """What the HTTP handler asks: the configuration and the cluster-facing callables."""

    config: WebhookConfig
    secrets: SecretReader
    push: Pusher
    clock: Callable[[], float] = field(default=time.time)

    def accept(self, source: Source, headers: Headers, body: bytes) -> dict[str, Any]:
        """Verify and turn one delivery into an event; the 202 answer, or Rejected."""
        verify(source, self.secrets(source.secret), headers, body, self.clock())
        data = json_body(body)
        key = event_key(source, headers, data)
        metadata = {SOURCE_METADATA: source.name}
        rule = source.delivery_pick
        delivery = pick(rule, headers, data) if rule is not None else None
        if delivery is not None:
            metadata[DELIVERY_METADATA] = delivery[:253]
        try:
            name = self.push(source.namespace, key, data, metadata)
        except ValidationError as err:  # the WorkflowEvent's own checks (the key)
            problems = "; ".join(e["msg"] for e in err.errors())
            raise Rejected(422, f"event key {key!r} refused: {problems}") from None
        except KubehatchError as err:
            raise _push_failure(err) from None
        answer = {"event": name, "key": key, "source": source.name}
        return {**answer, **({"delivery": delivery} if delivery is not None else {})}


def _push_failure(err: KubehatchError) -> Rejected:
    """A refused push as an answer: the payload's fault (4xx) or the cluster's (503)."""
    if isinstance(err, InvalidInputError):  # the payload does not fit a Workflow it starts
        return Rejected(422, f"event refused: {err}")
    if not isinstance(err, ApiError):  # raised before any API call: the payload's size
        return Rejected(413, f"event refused: {err}")
    log.error("creating the event failed: %s", err)
    if err.status == 422:
        return Rejected(422, f"event refused by the API server: {err}")
    return Rejected(503, "the event could not be created (the API server refused or failed)")


class Handler(BaseHTTPRequestHandler):
    """One request. The receiver hangs off the server (``server.receiver``)."""

    server: WebhookServer
    server_version = "kubehatch-webhooks"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT
    _note = ""  # what the log line of this answer adds

    def handle_one_request(self) -> None:
        self._note = ""  # one handler serves every request of a kept-alive connection
        super().handle_one_request()

    # --- answers --------------------------------------------------------------------------
    def _send(self, status: int, body: dict[str, Any], headers: Mapping[str, str] = {}) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(
        self, status: int, reason: str, source: str | None, headers: Mapping[str, str] = {}
    ) -> None:
        self._note = reason
        self._send(status, {"error": reason, "source": source}, headers)

    def _source_name(self) -> str | None:
        path = self.path.split("?", 1)[0]
        if path.startswith(PREFIX) and "/" not in path[len(PREFIX) :]:
            return path[len(PREFIX) :][:100]
        return None

    def _other(self) -> None:
        """Any method but POST (and GET /healthz): 405 where the path exists, else 404."""
        path = self.path.split("?", 1)[0]
        if path == HEALTH:
            if self.command in ("GET", "HEAD"):
                self._send(200, {"status": "ok"})
            else:
                self._error(
                    405, f"{self.command} not allowed; use GET", None, {"Allow": "GET, HEAD"}
                )
            return
        name = self._source_name()
        if name is None:
            self._error(404, f"no such path {path[:100]!r}; POST to /webhooks/<source>", None)
        elif self.command != "POST":
            self._error(405, f"{self.command} not allowed; use POST", name, {"Allow": "POST"})
        else:
            self._post(name)

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST = _other

    # --- a delivery -------------------------------------------------------------------------
    def _post(self, name: str) -> None:
        receiver = self.server.receiver
        source = receiver.config.source(name)
        if source is None:
            self.close_connection = True  # its body, if any, is not read
            self._error(404, f"unknown source {name!r}", name)
            return
        try:
            body = self._body(receiver.config.max_body_bytes)
            answer = receiver.accept(source, self.headers, body)
        except Rejected as rejected:
            self._error(rejected.status, rejected.reason, name)
            return
        except Exception:  # a bug: logged with its traceback, a 500 without details
            log.exception("source %s: unexpected error", name)
            self._error(500, "internal error (see the receiver's log)", name)
            return
        self._note = f"event {answer['event']}, key {answer['key']}"
        self._send(202, answer)

    def _body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            self.close_connection = True
            raise Rejected(411, "chunked bodies are not accepted; send Content-Length")
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.strip().isdigit():
            self.close_connection = True
            raise Rejected(411, "missing or invalid Content-Length header")
        length = int(length_text)
        if length > limit:
            self.close_connection = True  # the body stays unread: the connection cannot be reused
            raise Rejected(413, f"body of {length} bytes is over the limit of {limit} bytes")
        chunks, received = [], 0
        deadline = time.monotonic() + BODY_DEADLINE
        while received < length:
            try:
                chunk = self.rfile.read1(min(length - received, 65536))
            except TimeoutError:
                self.close_connection = True
                raise Rejected(408, f"no more of the body within {self.timeout:g} s") from None
            if not chunk or time.monotonic() > deadline:
                self.close_connection = True
                why = "ended" if not chunk else f"took over {BODY_DEADLINE:.0f} s"
                raise Rejected(400, f"body {why} after {received} of {length} bytes")
            chunks.append(chunk)
            received += len(chunk)
        return b"".join(chunks)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per answer, with the reason of a refusal or the event created."""
        level = logging.DEBUG if self.path == HEALTH else logging.INFO
        note = f" ({self._note})" if self._note else ""
        log.log(level, '%s "%s" %s%s', self.address_string(), self.requestline, code, note)

    def log_message(self, format: str, *args: Any) -> None:
        log.warning("%s %s", self.address_string(), format % args)


class WebhookServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that finishes the requests under way when it is shut down."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(address, Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def serve(server: WebhookServer) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests under way (main thread only)."""

    def stop(signum: int, _frame: object) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    sources = ", ".join(s.name for s in server.receiver.config.sources) or "none"
    log.info("listening on %s:%s; sources: %s", host, port, sources)
    try:
        server.serve_forever()
    finally:
        server.server_close()
