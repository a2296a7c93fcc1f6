"""The step pod's API writer: one POST, its retries, its errors, the pod's ServiceAccount.

The API server is a scripted ``http.server`` on 127.0.0.1 (loopback only): spoken to in
plain HTTP through an injected connection factory, and as a pod does, over TLS with a CA and
certificate the ``openssl`` command makes (those tests are skipped without it).
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubehatch._http1 import host_header
from kubehatch._incluster import (
    ATTEMPTS,
    MAX_RETRY_AFTER_SECONDS,
    InClusterError,
    Server,
    _retry_after,
    create,
)

PATH = "/api/v1/namespaces/ns/configmaps"
BODY = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "é"}}
FORBIDDEN = {
    "kind": "Status",
    "status": "Failure",
    "message": 'configmaps is forbidden: User "system:serviceaccount:ns:sa" cannot create',
    "reason": "Forbidden",
    "code": 403,
}


@dataclass
class FakeApi:
    """Answers each request with the next scripted (status, headers, body); 201 when none."""

    port: int
    replies: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def reply(self, status: int, body: Any = b"", **headers: str) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.replies.append((status, {k.replace("_", "-"): v for k, v in headers.items()}, data))

    @property
    def server(self) -> Server:
        return Server("127.0.0.1", self.port, "tok", None)

    def create(self, **options: Any) -> bool:
        options = {
            "what": "ConfigMap ns/x",
            "connect": plain_http,
            "sleep": self.sleeps.append,
            **options,
        }
        return create(self.server, PATH, BODY, **options)


def plain_http(
    host: str, port: int, context: ssl.SSLContext | None, timeout: float
) -> socket.socket:
    assert host == "127.0.0.1" and context is None  # loopback only, never anything else
    return socket.create_connection((host, port), timeout)


def serve(fake: FakeApi, tls: ssl.SSLContext | None = None) -> Iterator[FakeApi]:
    """Run ``fake`` on a loopback port (TLS with ``tls``) until the test ends."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            fake.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
            )
            status, headers, data = fake.replies.pop(0) if fake.replies else (201, {}, b"{}")
            self.send_response(status)
            for name, value in {"Content-Length": str(len(data)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    fake.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield from serve(FakeApi(port=0))


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_creates_with_the_token_and_the_body_as_json(api: FakeApi) -> None:
    assert api.create() is True
    [request] = api.requests
    assert request["path"] == PATH
    assert request["headers"]["Authorization"] == "Bearer tok"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == BODY
    assert api.sleeps == []


def test_already_exists_is_not_an_error(api: FakeApi) -> None:
    api.reply(409, {"kind": "Status", "reason": "AlreadyExists", "code": 409})
    assert api.create() is False
    assert len(api.requests) == 1


def test_a_refusal_is_not_retried_and_names_the_api_servers_message(api: FakeApi) -> None:
    api.reply(403, FORBIDDEN)
    with pytest.raises(InClusterError) as caught:
        api.create()
    assert caught.value.status == 403
    assert str(caught.value) == (
        "cannot create ConfigMap ns/x: the API server answered 403 Forbidden: "
        + FORBIDDEN["message"]
    )
    assert len(api.requests) == 1 and api.sleeps == []


def test_a_body_that_is_no_status_is_quoted_as_sent(api: FakeApi) -> None:
    api.reply(400, b"<html>\n  bad   request\n</html>")
    with pytest.raises(InClusterError, match=r"400 Bad Request: <html> bad request </html>$"):
        api.create()


def test_429_and_5xx_are_retried_obeying_retry_after(api: FakeApi) -> None:
    api.reply(429, {"kind": "Status", "message": "too many requests"}, Retry_After="2")
    api.reply(503, {"kind": "Status", "message": "unavailable"})
    api.reply(500, {}, Retry_After="3600")
    assert api.create() is True
    assert len(api.requests) == 4
    assert api.sleeps[0] == 2.0
    assert 0.25 <= api.sleeps[1] <= 0.5  # no Retry-After: the backoff of the second attempt
    assert api.sleeps[2] == MAX_RETRY_AFTER_SECONDS


def test_gives_up_after_the_attempts_with_the_last_message(api: FakeApi) -> None:
    for _ in range(ATTEMPTS):
        api.reply(500, {"kind": "Status", "message": "etcdserver: request timed out"})
    with pytest.raises(InClusterError, match="500 Internal Server Error: etcdserver") as caught:
        api.create()
    assert caught.value.status == 500
    assert len(api.requests) == ATTEMPTS and len(api.sleeps) == ATTEMPTS - 1
    assert api.sleeps == sorted(api.sleeps)  # backing off


def test_no_answer_at_all_says_where_it_asked() -> None:
    server = Server("127.0.0.1", closed_port(), "tok", None)
    sleeps: list[float] = []
    with pytest.raises(InClusterError) as caught:
        create(server, PATH, BODY, what="ConfigMap ns/x", connect=plain_http, sleep=sleeps.append)
    assert caught.value.status is None
    assert str(caught.value).startswith(
        f"cannot create ConfigMap ns/x: no answer from the API server at {server.url} "
        f"after {ATTEMPTS} attempts: ConnectionRefusedError"
    )
    assert len(sleeps) == ATTEMPTS - 1


def hanging_up(times: int) -> int:
    """A loopback port that accepts ``times`` connections and closes each without answering."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            for _ in range(times):
                connection, _ = listener.accept()
                connection.shutdown(socket.SHUT_WR)  # the end of the answer: there is none
                while connection.recv(65536):  # the request, until the client gives up
                    pass
                connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


@pytest.mark.parametrize(
    "first", [closed_port, lambda: hanging_up(1)], ids=["refused", "closed without an answer"]
)
def test_no_answer_is_retried(api: FakeApi, first: Callable[[], int]) -> None:
    ports = iter([first(), api.port])

    def failing_once(
        host: str, port: int, context: ssl.SSLContext | None, timeout: float
    ) -> socket.socket:
        return plain_http(host, next(ports), context, timeout)

    assert create(api.server, PATH, BODY, what="x", connect=failing_once, sleep=api.sleeps.append)
    assert len(api.requests) == 1 and len(api.sleeps) == 1


def test_never_an_answer_says_so() -> None:
    server = Server("127.0.0.1", hanging_up(ATTEMPTS), "tok", None)
    with pytest.raises(InClusterError) as caught:
        create(server, PATH, BODY, what="ConfigMap ns/x", connect=plain_http, sleep=lambda _: None)
    assert caught.value.status is None
    assert str(caught.value) == (
        f"cannot create ConfigMap ns/x: no answer from the API server at {server.url} "
        f"after {ATTEMPTS} attempts: ProtocolError: the connection closed without an answer"
    )


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0", 0.0), (None, 0.4), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.4), ("nan", 0.4)],
)
def test_retry_after_in_seconds_else_the_backoff(header: str | None, seconds: float) -> None:
    assert _retry_after(header, 0.4) == seconds


@pytest.fixture
def account(tmp_path: Path) -> dict[str, Path]:
    """A mounted ServiceAccount: a token and a CA bundle (any valid PEM will do)."""
    certifi = pytest.importorskip("certifi")
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "ca.crt").write_text(Path(certifi.where()).read_text())
    return {"token_file": tmp_path / "token", "ca_file": tmp_path / "ca.crt"}


def test_the_server_is_the_pods_service_account_and_env(account: dict[str, Path]) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    server = Server.from_pod(env, **account)
    assert (server.host, server.port, server.token, server.url) == (
        "10.96.0.1",
        443,
        "tok",
        "https://10.96.0.1:443",
    )
    assert server.context is not None
    assert server.context.verify_mode == ssl.CERT_REQUIRED and server.context.check_hostname


@pytest.mark.parametrize("host", ["fd00::1", "[fd00::1]"])
def test_ipv6_hosts_are_bracketed_in_urls_and_the_host_header_only(
    account: dict[str, Path], host: str
) -> None:
    env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": "6443"}
    server = Server.from_pod(env, **account)
    assert (server.host, server.url) == ("fd00::1", "https://[fd00::1]:6443")
    assert host_header(server.host, server.port) == "[fd00::1]:6443"


HOST = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}


@pytest.mark.parametrize(
    ("env", "files", "message"),
    [
        ({}, {}, "KUBERNETES_SERVICE_HOST is not set: not running in a Kubernetes pod"),
        ({**HOST, "KUBERNETES_SERVICE_PORT": "https"}, {}, "KUBERNETES_SERVICE_PORT is not a port"),
        (HOST, {"token": None}, r"cannot read '.*/token' \(No such file.*automountServiceAcc"),
        (HOST, {"token": " \n"}, "token '.*/token' is empty"),
        (HOST, {"ca.crt": None}, r"cannot read '.*/ca.crt' \(No such file"),
    ],
)
def test_what_is_missing_is_said_plainly(
    account: dict[str, Path], env: dict[str, str], files: dict[str, str | None], message: str
) -> None:
    for name, text in files.items():
        path = account["token_file"].with_name(name)
        if text is None:
            path.unlink()
        else:
            path.write_text(text)
    with pytest.raises(InClusterError, match=message):
        Server.from_pod(env, **account)


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@pytest.fixture
def tls_api(tmp_path: Path) -> Iterator[tuple[FakeApi, Path]]:
    """The fake API over TLS, its certificate for 127.0.0.1 signed by a CA of its own."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make certificates")
    ca, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", key, "-out", ca, "-days", "1", "-subj", "/CN=ca")
    (tmp_path / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    csr, cert, cert_key = tmp_path / "api.csr", tmp_path / "api.crt", tmp_path / "api.key"
    openssl("req", *ec, "-keyout", cert_key, "-out", csr, "-subj", "/CN=kubernetes")
    openssl(
        *("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", key, "-CAcreateserial"),
        *("-out", cert, "-days", "1", "-extfile", tmp_path / "san.cnf"),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, cert_key)
    for fake in serve(FakeApi(port=0), context):
        yield fake, ca


def test_the_pods_own_way_in_tls_with_its_ca_and_token(
    tls_api: tuple[FakeApi, Path], tmp_path: Path
) -> None:
    fake, ca = tls_api
    (tmp_path / "token").write_text("tok")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(fake.port)}
    server = Server.from_pod(env, token_file=tmp_path / "token", ca_file=ca)
    assert create(server, PATH, BODY, what="ConfigMap ns/x") is True
    assert fake.requests[0]["headers"]["Authorization"] == "Bearer tok"


def test_the_pods_way_in_loads_no_idna_codec_for_an_ip_address(
    tls_api: tuple[FakeApi, Path],
) -> None:
    """The host as ASCII bytes: verified as the same IP address, without ``encodings.idna``
    (and unicodedata) in every step pod."""
    fake, ca = tls_api
    script = (
        "import ssl, sys\n"
        "from kubehatch._incluster import https_connection\n"
        "context = ssl.create_default_context(cafile=sys.argv[2])\n"
        "https_connection('127.0.0.1', int(sys.argv[1]), context, 5.0).close()\n"
        "print('encodings.idna' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(fake.port), str(ca)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "False"


def test_an_api_server_the_ca_does_not_vouch_for_is_refused_at_once(
    tls_api: tuple[FakeApi, Path], account: dict[str, Path]
) -> None:
    fake, _ = tls_api
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(fake.port)}
    server = Server.from_pod(env, **account)  # the CA: a public bundle, not this server's
    sleeps: list[float] = []
    with pytest.raises(InClusterError, match="fails verification with the ServiceAccount's CA"):
        create(server, PATH, BODY, what="ConfigMap ns/x", sleep=sleeps.append)
    assert fake.requests == [] and sleeps == []


def test_the_token_stays_out_of_reprs() -> None:
    assert "secret" not in repr(Server("10.96.0.1", 443, "secret"))
