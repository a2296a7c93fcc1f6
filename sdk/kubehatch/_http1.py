"""One HTTP/1.1 request on a connected socket: what a step pod's single API call needs.

``http.client`` would do, but it parses headers with the ``email`` package, and importing
that costs more CPU than the rest of the request, in every step pod (see
:mod:`kubehatch._incluster`). This sends one request with a ``Content-Length`` body and
reads the status line, the headers and, when asked, the body: by ``Content-Length``,
chunked, or up to the end of the connection (the request says ``Connection: close``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import BinaryIO

MAX_LINE = 65536
"""Longest status, header or chunk-size line read (http.client's limit)."""
MAX_HEADERS = 100
"""Most header lines read (http.client's limit)."""
_FORBIDDEN = ("\r", "\n", "\0")


class ProtocolError(Exception):
    """The answer is not HTTP/1.x, or it ended before it was whole."""


class Response:
    """An answer: ``headers`` by lower-case name (a repeated one's values joined with ", "),
    ``body`` empty unless ``read_body`` asked for it. (A plain class: a NamedTuple or a
    dataclass is generated code, compiled at import.)"""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


def host_header(host: str, port: int, default_port: int = 443) -> str:
    """``Host``'s value, as http.client writes it: an IPv6 address in brackets, the port
    only when it is not the default one."""
    host = f"[{host}]" if ":" in host else host
    return host if port == default_port else f"{host}:{port}"


def request(
    sock: socket.socket,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    read_body: Callable[[int], bool] = lambda status: True,
) -> Response:
    """Send one request on ``sock`` and read its answer; the body only if ``read_body(status)``.

    ``headers`` should hold ``Host``; ``Content-Length`` and ``Connection: close`` are added.
    Raises OSError (the socket's: refused, reset, timed out) or :class:`ProtocolError`. The
    caller closes ``sock``.
    """
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    if any(char in line for line in lines for char in _FORBIDDEN):
        raise ValueError(f"a line break or NUL in the request's head: {lines[0]!r}")
    # One write, head and body: no Nagle delay between them.
    sock.sendall("\r\n".join([*lines, "", ""]).encode("latin-1") + body)
    with sock.makefile("rb") as reader:
        status, reason = _status_line(reader)
        while 100 <= status < 200:  # interim answers (100 Continue...): the final one follows
            _headers(reader)
            status, reason = _status_line(reader)
        fields = _headers(reader)
        content = _body(reader, fields) if read_body(status) else b""
    return Response(status, reason, fields, content)


def _line(reader: BinaryIO, what: str) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError(f"{what} longer than {MAX_LINE} bytes")
    return line


def _status_line(reader: BinaryIO) -> tuple[int, str]:
    line = _line(reader, "a status line")
    if not line:
        raise ProtocolError("the connection closed without an answer")
    version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not _digits(code):
        raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return int(code), reason.strip()


def _headers(reader: BinaryIO) -> dict[str, str]:
    fields: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader, "a header line")
        if line in (b"\r\n", b"\n", b""):  # the blank line (or the end, as http.client takes it)
            return fields
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:  # not a header (a folded line...): passed over, as http.client does
            continue
        name, value = name.strip().lower(), value.strip()
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    raise ProtocolError(f"more than {MAX_HEADERS} header lines")


def _body(reader: BinaryIO, fields: Mapping[str, str]) -> bytes:
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return _chunked(reader)
    length = fields.get("content-length", "")
    if not _digits(length):  # none, or not a number: the body ends with the connection
        return reader.read()
    return _exactly(reader, int(length))


def _chunked(reader: BinaryIO) -> bytes:
    """The chunks' data put together (trailers are not read: the connection closes)."""
    parts: list[bytes] = []
    while True:
        line = _line(reader, "a chunk size line")
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
            raise ProtocolError(f"not a chunk size: {line[:80]!r}")
        size = int(size_text, 16)
        if size == 0:
            return b"".join(parts)
        parts.append(_exactly(reader, size))
        if _line(reader, "a chunk's end") not in (b"\r\n", b"\n"):
            raise ProtocolError("a chunk longer than its size")


def _exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise ProtocolError(f"the answer ended after {len(data)} of {size} bytes of its body")
    return data


def _digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes "²", which ``int`` refuses)."""
    return text.isascii() and text.isdigit()
