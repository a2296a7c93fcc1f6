"""The step pod's HTTP/1.1 exchange: one request out, the answer read as an API server sends it.

Each test plays the server on the other end of a socket pair with bytes written by hand:
``Content-Length``, chunked and read-to-the-end bodies, interim answers, and answers that
are not HTTP or end too early.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from kubehatch._http1 import MAX_HEADERS, ProtocolError, Response, host_header, request

HEADERS = {"Host": "10.96.0.1", "Authorization": "Bearer tok"}


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    client.settimeout(5)
    server.settimeout(5)
    yield client, server
    client.close()
    server.close()


def exchange(
    pair: tuple[socket.socket, socket.socket], answer: bytes, *, read_body: bool = True
) -> tuple[Response, bytes]:
    """Send a POST through ``request`` while the other end answers ``answer`` and closes.

    Returns the response and the request's bytes as the server received them.
    """
    client, server = pair
    received = bytearray()

    def serve() -> None:
        while not received.endswith(b'\r\n\r\n{"a":1}'):
            data = server.recv(65536)
            if not data:
                return
            received.extend(data)
        with contextlib.suppress(OSError):  # the client may stop reading early
            server.sendall(answer)
            server.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        response = request(
            client, "POST", "/api/v1/x", HEADERS, b'{"a":1}', read_body=lambda _: read_body
        )
    finally:
        thread.join(5)
    return response, bytes(received)


def test_the_request_is_one_head_and_its_body(pair: tuple[socket.socket, socket.socket]) -> None:
    response, sent = exchange(pair, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
    assert sent == (
        b"POST /api/v1/x HTTP/1.1\r\nHost: 10.96.0.1\r\nAuthorization: Bearer tok\r\n"
        b'Content-Length: 7\r\nConnection: close\r\n\r\n{"a":1}'
    )
    assert (response.status, response.reason, response.body) == (201, "Created", b"{}")


def test_headers_by_lower_case_name_repeated_ones_joined(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    answer = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nWarning: a\r\nwarning:  b \r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    response, _ = exchange(pair, answer)
    assert response.headers == {"retry-after": "3", "warning": "a, b", "content-length": "0"}
    assert (response.status, response.reason, response.body) == (429, "Too Many Requests", b"")


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b"Content-Length: 5\r\n\r\nhello", b"hello"),
        (b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n", None),
        (b"Transfer-Encoding: chunked\r\n\r\nB\r\nhello world\r\n0\r\nTrailer: x\r\n\r\n", None),
        (b"\r\nhello world", None),  # neither: up to the end of the connection
        (b"Content-Length: nonsense\r\n\r\nhello world", None),
    ],
)
def test_a_body_by_length_chunked_or_to_the_end(
    pair: tuple[socket.socket, socket.socket], answer: bytes, body: bytes | None
) -> None:
    response, _ = exchange(pair, b"HTTP/1.1 500 Internal Server Error\r\n" + answer)
    assert response.body == (body or b"hello world")


def test_a_body_not_asked_for_is_not_read(pair: tuple[socket.socket, socket.socket]) -> None:
    answer = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\nnot even chunked"
    response, _ = exchange(pair, answer, read_body=False)
    assert (response.status, response.body) == (201, b"")


def test_interim_answers_are_passed_over(pair: tuple[socket.socket, socket.socket]) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n"
        b"HTTP/1.1 409 Conflict\r\nContent-Length: 3\r\n\r\nnop"
    )
    response, _ = exchange(pair, answer)
    assert (response.status, response.reason, response.headers, response.body) == (
        409,
        "Conflict",
        {"content-length": "3"},
        b"nop",
    )


def test_a_status_line_without_a_reason(pair: tuple[socket.socket, socket.socket]) -> None:
    response, _ = exchange(pair, b"HTTP/1.0 503\r\n\r\n")
    assert (response.status, response.reason, response.body) == (503, "", b"")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"", "the connection closed without an answer"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 500 Oops\r\nContent-Length: 10\r\n\r\nshort", "ended after 5 of 10 bytes"),
        (b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a chunk size"),
        (b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "longer than"),
        (b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "ended after 2"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n", "more than 100"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", "longer than 65536 bytes"),
    ],
)
def test_what_is_not_http_or_ends_early_is_a_protocol_error(
    pair: tuple[socket.socket, socket.socket], answer: bytes, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        exchange(pair, answer)


def test_no_line_break_can_get_into_the_head() -> None:
    client, server = socket.socketpair()
    with client, server, pytest.raises(ValueError, match="a line break or NUL"):
        request(client, "POST", "/x", {"Authorization": "Bearer a\r\nX-Evil: 1"}, b"")


@pytest.mark.parametrize(
    ("host", "port", "header"),
    [
        ("10.96.0.1", 443, "10.96.0.1"),
        ("10.96.0.1", 6443, "10.96.0.1:6443"),
        ("fd00::1", 443, "[fd00::1]"),
        ("fd00::1", 6443, "[fd00::1]:6443"),
        ("kubernetes.default.svc", 443, "kubernetes.default.svc"),
    ],
)
def test_the_host_header_as_http_client_writes_it(host: str, port: int, header: str) -> None:
    assert host_header(host, port) == header
