"""The webhook receiver: signatures, keys, limits and error bodies, over real HTTP.

Each test talks to a real WebhookServer on 127.0.0.1 (an ephemeral port) through
http.client; only the cluster side is replaced: the signing secrets are a dict and the
"pushed" events are recorded instead of created.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubehatch._apierrors import ApiError
from kubehatch.api.inputschema import InvalidInputError
from kubehatch.api.workflowevent import WorkflowEvent
from kubehatch.errors import KubehatchError
from kubehatch.webhooks.config import SecretRef, parse_config, parse_json_path
from kubehatch.webhooks.server import Handler, Receiver, WebhookServer
from kubehatch.webhooks.verify import Rejected, sign

NOW = 1_700_000_000.0
SECRETS = {"gh": b"gh-secret", "stripe": b"whsec_test", "generic": b"generic-secret"}
CONFIG = {
    "maxBodyBytes": 4096,
    "sources": [
        {
            "name": "github",
            "secret": {"name": "gh"},
            "signature": "github",
            "key": {"header": "X-GitHub-Event"},
            "keyPrefix": "github:",
        },
        {
            "name": "stripe",
            "secret": {"name": "stripe"},
            "signature": "stripe",
            "key": {"jsonPath": "$.type"},
            "namespace": "billing",
        },
        {
            "name": "generic",
            "secret": {"name": "generic"},
            "signature": "hmac-sha256",
            "signatureHeader": "X-Acme-Signature",
            "signaturePrefix": "sha256=",
            "key": {"jsonPath": "$.events[0]['kind']"},
            "delivery": {"header": "X-Acme-Id"},
        },
        {
            "name": "fixed",
            "secret": {"name": "generic"},
            "signature": "hmac-sha256",
            "signatureEncoding": "base64",
            "key": {"value": "deploy:done"},
        },
    ],
}


@dataclass
class FakeCluster:
    pushed: list[tuple[str | None, str, dict[str, Any], dict[str, str]]] = field(
        default_factory=list
    )
    fail: Exception | None = None

    def secret(self, ref: SecretRef) -> bytes:
        if ref.name not in SECRETS:
            raise Rejected(503, "the source's signing secret cannot be read")
        return SECRETS[ref.name]

    def push(
        self, namespace: str | None, key: str, payload: dict[str, Any], metadata: dict[str, str]
    ) -> str:
        if self.fail is not None:
            raise self.fail
        # The WorkflowEvent's own checks, as Client.event.push makes them.
        spec = {"key": key, "payload": payload, "additionalMetadata": metadata}
        WorkflowEvent.model_validate({"metadata": {}, "spec": spec})
        self.pushed.append((namespace, key, payload, metadata))
        return f"event-{len(self.pushed)}"


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class Running:
    def __init__(self, server: WebhookServer, cluster: FakeCluster) -> None:
        self.server, self.cluster = server, cluster
        self.config = server.receiver.config

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            text = response.read()
            return Answer(
                response.status,
                json.loads(text) if text else {},
                {k.lower(): v for k, v in response.getheaders()},
            )
        finally:
            conn.close()

    def post(
        self,
        source: str,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        secret: bytes | None = None,
        now: float = NOW,
        tamper: bool = False,
    ) -> Answer:
        """POST ``payload`` (JSON unless bytes), signed as the source's sender would."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        config = self.config.source(source)
        signed = {}
        if config is not None:
            signed = sign(config, secret or SECRETS[config.secret.name], body, now)
        if tamper:
            body = body.replace(b"ada", b"eve")
        return self.request("POST", f"/webhooks/{source}", body, {**signed, **(headers or {})})


@pytest.fixture
def receiver() -> Iterator[Running]:
    cluster = FakeCluster()
    receiver = Receiver(parse_config(CONFIG), cluster.secret, cluster.push, clock=lambda: NOW)
    server = WebhookServer(("127.0.0.1", 0), receiver)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield Running(server, cluster)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


GITHUB = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}


# --- signatures ---------------------------------------------------------------------------


def test_a_signed_github_delivery_becomes_an_event(receiver: Running) -> None:
    answer = receiver.post("github", {"user": "ada"}, headers=GITHUB)
    assert answer.status == 202, answer.body
    assert answer.body == {
        "event": "event-1",
        "key": "github:push",
        "source": "github",
        "delivery": GITHUB["X-GitHub-Delivery"],
    }
    assert answer.headers["content-type"] == "application/json"
    metadata = {"webhook-source": "github", "webhook-delivery": GITHUB["X-GitHub-Delivery"]}
    assert receiver.cluster.pushed == [(None, "github:push", {"user": "ada"}, metadata)]


def test_github_signature_is_the_documented_hmac(receiver: Running) -> None:
    # GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
    source = receiver.config.source("github")
    assert source is not None
    signed = sign(source, b"It's a Secret to Everybody", b"Hello, World!", NOW)
    assert signed == {
        "X-Hub-Signature-256": "sha256="
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    }


@pytest.mark.parametrize("source", ["github", "stripe", "generic", "fixed"])
def test_a_tampered_body_is_refused(receiver: Running, source: str) -> None:
    payload = {"type": "invoice.paid", "events": [{"kind": "k"}], "user": "ada"}
    answer = receiver.post(source, payload, headers=GITHUB, tamper=True)
    assert answer.status == 401
    assert answer.body == {
        "error": "signature does not match the body and the source's secret",
        "source": source,
    }
    assert receiver.cluster.pushed == []


@pytest.mark.parametrize("source", ["github", "stripe", "generic", "fixed"])
def test_a_wrong_secret_is_refused(receiver: Running, source: str) -> None:
    payload = {"type": "invoice.paid", "events": [{"kind": "k"}]}
    answer = receiver.post(source, payload, headers=GITHUB, secret=b"not-the-secret")
    assert answer.status == 401
    assert "does not match" in answer.body["error"]
    assert receiver.cluster.pushed == []


@pytest.mark.parametrize(
    ("source", "header"),
    [
        ("github", "X-Hub-Signature-256"),
        ("stripe", "Stripe-Signature"),
        ("generic", "X-Acme-Signature"),
        ("fixed", "X-Signature-256"),
    ],
)
def test_a_missing_signature_is_refused(receiver: Running, source: str, header: str) -> None:
    body = json.dumps({"type": "x", "events": [{"kind": "k"}]}).encode()
    answer = receiver.request("POST", f"/webhooks/{source}", body, GITHUB)
    assert (answer.status, answer.body) == (
        401,
        {"error": f"missing signature: no {header} header", "source": source},
    )


@pytest.mark.parametrize(
    ("source", "value", "complaint"),
    [
        ("github", "sha1=abcd", "expected sha256=<hex>"),
        ("github", "sha256=not-hex", "not hex"),
        ("stripe", "v1=abcd", "expected t=<timestamp>,v1=<hex>"),
        ("stripe", "t=1,t=2,v1=ab", "expected t=<timestamp>,v1=<hex>"),
        ("generic", "md5=abcd", "expected sha256=<digest>"),
        ("fixed", "%%%", "not base64"),
    ],
)
def test_a_malformed_signature_header_is_refused(
    receiver: Running, source: str, value: str, complaint: str
) -> None:
    config = receiver.config.source(source)
    assert config is not None
    header = next(iter(sign(config, b"x", b"", NOW)))
    answer = receiver.post(source, {"type": "x"}, headers={header: value})
    assert answer.status == 401
    assert complaint in answer.body["error"]


def test_stripe_checks_the_timestamp_within_five_minutes(receiver: Running) -> None:
    event = {"id": "evt_1", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}
    inside = receiver.post("stripe", event, now=NOW - 299)
    assert inside.status == 202, inside.body
    assert receiver.cluster.pushed == [
        (
            "billing",
            "invoice.paid",
            event,
            {"webhook-source": "stripe", "webhook-delivery": "evt_1"},
        )
    ]
    stale = receiver.post("stripe", event, now=NOW - 301)
    assert stale.status == 401
    assert stale.body["error"].startswith("stale timestamp: signed 301 s ago")
    ahead = receiver.post("stripe", event, now=NOW + 600)
    assert ahead.status == 401 and "600 s ahead" in ahead.body["error"]
    assert len(receiver.cluster.pushed) == 1


def test_stripe_accepts_any_v1_while_a_secret_rolls(receiver: Running) -> None:
    body = json.dumps({"type": "invoice.paid"}).encode()
    good = hmac.new(SECRETS["stripe"], f"{int(NOW)}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={int(NOW)},v1={'0' * 64},v1={good},v0=ignored"
    answer = receiver.post("stripe", body, headers={"Stripe-Signature": header})
    assert answer.status == 202, answer.body


def test_an_unreadable_secret_is_a_503(receiver: Running) -> None:
    receiver.config.sources[0].secret.name = "missing"
    answer = receiver.post("github", {}, headers=GITHUB, secret=b"gh-secret")
    assert answer.status == 503
    assert answer.body == {
        "error": "the source's signing secret cannot be read",
        "source": "github",
    }


# --- keys and payloads ----------------------------------------------------------------------


def test_keys_from_a_json_path_and_a_fixed_value(receiver: Running) -> None:
    answer = receiver.post(
        "generic", {"events": [{"kind": "order:paid"}]}, headers={"X-Acme-Id": "d-1"}
    )
    assert answer.status == 202, answer.body
    assert answer.body["key"] == "order:paid" and answer.body["delivery"] == "d-1"
    assert receiver.post("fixed", {"anything": 1}).body["key"] == "deploy:done"
    _, _, _, metadata = receiver.cluster.pushed[-1]
    assert metadata == {"webhook-source": "fixed"}  # no delivery id for this format


@pytest.mark.parametrize(
    ("source", "payload", "headers", "complaint"),
    [
        ("github", {}, {}, "header X-GitHub-Event is missing"),
        ("github", {}, {"X-GitHub-Event": " "}, "header X-GitHub-Event is missing"),
        ("stripe", {"data": {}}, {}, "JSON path $.type is missing"),
        ("stripe", {"type": None}, {}, "JSON path $.type is missing"),
        ("stripe", {"type": {"a": 1}}, {}, "JSON path $.type is missing"),
        ("generic", {"events": []}, {}, "JSON path $.events[0]['kind'] is missing"),
    ],
)
def test_a_missing_key_is_a_422(
    receiver: Running, source: str, payload: Any, headers: dict[str, str], complaint: str
) -> None:
    answer = receiver.post(source, payload, headers=headers)
    assert answer.status == 422
    assert answer.body == {
        "error": f"no event key: {complaint}, empty or not a string",
        "source": source,
    }


def test_a_key_the_event_refuses_is_a_422(receiver: Running) -> None:
    answer = receiver.post("stripe", {"type": "has spaces"})
    assert answer.status == 422
    assert answer.body["error"].startswith("event key 'has spaces' refused: ")
    assert "not a valid event key" in answer.body["error"]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"{not json", "invalid JSON body: "),
        (b"\xff\xfe", "invalid JSON body: "),
        (b"[1, 2]", "the body must be a JSON object, not list"),
        (b"", "invalid JSON body: "),
    ],
)
def test_a_body_that_is_no_json_object_is_a_400(
    receiver: Running, body: bytes, complaint: str
) -> None:
    answer = receiver.post("github", body, headers=GITHUB)
    assert answer.status == 400
    assert answer.body["error"].startswith(complaint) and answer.body["source"] == "github"


def test_json_paths() -> None:
    assert parse_json_path("$.type") == ("type",)
    assert parse_json_path("$.data.object['id-x'][2].y") == ("data", "object", "id-x", 2, "y")
    assert parse_json_path('$["a b"]') == ("a b",)
    for bad in ("type", "$", "$.", "$..a", "$[x]", "$.a b"):
        with pytest.raises(ValueError, match="JSON path"):
            parse_json_path(bad)


# --- limits, routes, methods ----------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413_unread(receiver: Running) -> None:
    at_limit = json.dumps({"pad": "x" * (4096 - 11)}).encode()
    assert len(at_limit) == 4096
    assert receiver.post("github", at_limit, headers=GITHUB).status == 202
    over = receiver.post("github", at_limit + b" ", headers=GITHUB)
    assert over.status == 413
    assert over.body == {
        "error": "body of 4097 bytes is over the limit of 4096 bytes",
        "source": "github",
    }
    # Announced, never sent: refused on the header alone (the body is not waited for).
    conn = http.client.HTTPConnection("127.0.0.1", receiver.server.port, timeout=5)
    conn.putrequest("POST", "/webhooks/github")
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()


def test_a_body_without_length_is_a_411(receiver: Running) -> None:
    for framing in (b"Transfer-Encoding: chunked\r\n", b""):
        with socket.create_connection(("127.0.0.1", receiver.server.port), timeout=5) as sock:
            sock.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n")
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 411
            assert "Content-Length" in json.loads(response.read())["error"]


def test_an_unknown_source_is_a_404(receiver: Running) -> None:
    answer = receiver.request("POST", "/webhooks/gitlab", b"{}")
    assert (answer.status, answer.body) == (
        404,
        {"error": "unknown source 'gitlab'", "source": "gitlab"},
    )
    assert receiver.request("POST", "/elsewhere", b"{}").status == 404
    assert receiver.request("POST", "/webhooks/github/extra", b"{}").status == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_a_405(receiver: Running, method: str) -> None:
    answer = receiver.request(method, "/webhooks/github")
    assert answer.status == 405
    assert answer.headers["allow"] == "POST"
    assert answer.body == {"error": f"{method} not allowed; use POST", "source": "github"}
    assert receiver.request("POST", "/healthz").status == 405


def test_healthz(receiver: Running) -> None:
    answer = receiver.request("GET", "/healthz")
    assert (answer.status, answer.body) == (200, {"status": "ok"})
    assert answer.headers["server"].startswith("kubehatch-webhooks")


def test_keep_alive_serves_several_deliveries(receiver: Running) -> None:
    source = receiver.config.source("fixed")
    assert source is not None
    conn = http.client.HTTPConnection("127.0.0.1", receiver.server.port, timeout=5)
    for _ in range(3):
        body = b'{"n": 1}'
        conn.request(
            "POST", "/webhooks/fixed", body=body, headers=sign(source, b"generic-secret", body, NOW)
        )
        response = conn.getresponse()
        assert response.status == 202
        response.read()
    conn.close()
    assert len(receiver.cluster.pushed) == 3


# --- what the cluster says ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "complaint"),
    [
        (InvalidInputError("'w'", "name: required"), 422, "event refused: "),
        (KubehatchError("the payload is over the limit of 983040 bytes"), 413, "over the limit"),
        (ApiError("forbidden", 403), 503, "could not be created"),
        (ApiError("connection refused", None), 503, "could not be created"),
        (ApiError("invalid", 422), 422, "refused by the API server"),
    ],
)
def test_push_failures(receiver: Running, error: Exception, status: int, complaint: str) -> None:
    receiver.cluster.fail = error
    answer = receiver.post("github", {}, headers=GITHUB)
    assert answer.status == status
    assert complaint in answer.body["error"]


def test_a_bug_is_a_500_without_details(receiver: Running) -> None:
    receiver.cluster.fail = RuntimeError("secret details")
    answer = receiver.post("github", {}, headers=GITHUB)
    assert answer.status == 500
    assert answer.body == {"error": "internal error (see the receiver's log)", "source": "github"}


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"signature": "gitlab"}, "signature"),
        ({"key": {}}, "give exactly one of value, header or jsonPath"),
        ({"key": {"header": "X-A", "value": "b"}}, "give exactly one"),
        ({"key": {"jsonPath": "type"}}, r"JSON path 'type' must start with '\$'"),
        ({"name": "Not_A_Name"}, "name"),
        ({"secret": {"name": "s", "extra": 1}}, "extra"),
        ({"toleranceSeconds": 0}, "toleranceSeconds"),
    ],
)
def test_bad_configurations_are_refused(change: dict[str, Any], complaint: str) -> None:
    source = {**CONFIG["sources"][0], **change}  # type: ignore[dict-item]
    with pytest.raises(KubehatchError, match=complaint):
        parse_config({"sources": [source]})


def test_source_names_are_unique() -> None:
    with pytest.raises(KubehatchError, match="given twice: github"):
        parse_config({"sources": [CONFIG["sources"][0]] * 2})  # type: ignore[index]


def test_validation_error_is_the_pydantic_one() -> None:
    with pytest.raises(ValidationError):
        WorkflowEvent.model_validate({"metadata": {}, "spec": {"key": "a b"}})


# --- the command ------------------------------------------------------------------------------


def test_serve_needs_a_valid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kubehatch.cli import main

    assert main(["webhook", "serve"]) == 1
    assert "--config FILE" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{name: x}]")
    assert main(["webhook", "serve", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "is invalid: sources.0.secret: Field required" in err


def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The real command in a process of its own: its cluster is unreachable, so the
    secret cannot be read and a delivery gets 503; SIGTERM stops it with status 0."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    argv = [sys.executable, "-m", "kubehatch.cli", "webhook", "serve", "--address", "127.0.0.1"]
    argv += ["--port", "0", "--config", str(tmp_path / "config.yaml")]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        found = None
        while found is None:
            line = proc.stderr.readline()
            assert line, "".join(lines)  # it exited before listening
            lines.append(line)
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        port = int(found.group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
        source = parse_config(CONFIG).source("fixed")
        assert source is not None
        body = b"{}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/webhooks/fixed", body, sign(source, b"generic-secret", body, NOW))
        response = conn.getresponse()
        assert response.status == 503
        assert json.loads(response.read())["error"] == "the source's signing secret cannot be read"
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        rest = proc.stderr.read()
        assert "SIGTERM: stopping" in rest
        assert '"POST /webhooks/fixed HTTP/1.1" 503 (the source\'s signing secret' in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_short_or_stalled_body_is_refused(
    receiver: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    with socket.create_connection(("127.0.0.1", receiver.server.port), timeout=5) as sock:
        sock.sendall(head + b"12345")
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 400
        assert json.loads(response.read())["error"] == "body ended after 5 of 10 bytes"
    monkeypatch.setattr(Handler, "timeout", 0.2)
    with socket.create_connection(("127.0.0.1", receiver.server.port), timeout=5) as sock:
        sock.sendall(head + b"12345")  # and nothing more
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 408
        assert json.loads(response.read())["error"] == "no more of the body within 0.2 s"
    assert receiver.cluster.pushed == []
