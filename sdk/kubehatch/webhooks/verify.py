"""Signature checks and value extraction: pure functions over headers and a body.

Every digest is compared with :func:`hmac.compare_digest` (constant time). A failure is a
:class:`Rejected`: the HTTP status and the one-line reason the server sends back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any, Protocol

from kubehatch.webhooks.config import Pick, Scheme, Source

GITHUB_HEADER = "X-Hub-Signature-256"
STRIPE_HEADER = "Stripe-Signature"


class Headers(Protocol):
    """Request headers by name: a dict, or the ``email.message.Message`` of http.server
    (which ignores case)."""

    def get(self, name: str, /) -> str | None: ...


class Rejected(Exception):
    """The request is refused with ``status`` and ``reason`` (a client error, or 5xx)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _header(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise Rejected(401, f"missing signature: no {name} header")
    return value.strip()


def _digest(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def _from_hex(text: str, header: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise Rejected(401, f"malformed {header} header: the digest is not hex") from None


def _github(secret: bytes, headers: Headers, body: bytes) -> None:
    value = _header(headers, GITHUB_HEADER)
    scheme, sep, digest = value.partition("=")
    if not sep or scheme != "sha256":
        raise Rejected(401, f"malformed {GITHUB_HEADER} header: expected sha256=<hex>")
    if not hmac.compare_digest(_from_hex(digest, GITHUB_HEADER), _digest(secret, body)):
        raise Rejected(401, "signature does not match the body and the source's secret")


def _stripe(secret: bytes, headers: Headers, body: bytes, now: float, tolerance: int) -> None:
    value = _header(headers, STRIPE_HEADER)
    timestamps, signatures = [], []
    for item in value.split(","):
        name, _, text = item.strip().partition("=")
        if name == "t":
            timestamps.append(text)
        elif name == "v1":  # v0 and others: not HMAC-SHA256 of the secret, ignored
            signatures.append(text)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        raise Rejected(401, f"malformed {STRIPE_HEADER} header: expected t=<timestamp>,v1=<hex>")
    expected = _digest(secret, timestamps[0].encode() + b"." + body)
    # Every v1 is compared (no early exit): Stripe sends two while a secret is being rolled.
    matches = [hmac.compare_digest(_from_hex(s, STRIPE_HEADER), expected) for s in signatures]
    if not any(matches):
        raise Rejected(401, "signature does not match the body and the source's secret")
    age = now - int(timestamps[0])
    if abs(age) > tolerance:  # checked once the timestamp is known to be the sender's
        raise Rejected(
            401,
            f"stale timestamp: signed {abs(age):.0f} s {'ago' if age > 0 else 'ahead'}, "
            f"more than the tolerance of {tolerance} s (a replay, or a clock off)",
        )


def _generic(source: Source, secret: bytes, headers: Headers, body: bytes) -> None:
    header = source.signature_header
    value = _header(headers, header)
    if not value.startswith(source.signature_prefix):
        raise Rejected(
            401, f"malformed {header} header: expected {source.signature_prefix}<digest>"
        )
    text = value[len(source.signature_prefix) :]
    if source.signature_encoding == "base64":
        try:
            given = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise Rejected(401, f"malformed {header} header: the digest is not base64") from None
    else:
        given = _from_hex(text, header)
    if not hmac.compare_digest(given, _digest(secret, body)):
        raise Rejected(401, "signature does not match the body and the source's secret")


def verify(source: Source, secret: bytes, headers: Headers, body: bytes, now: float) -> None:
    """Return if ``body`` is signed with ``secret`` as ``source`` says; else raise Rejected.

    ``headers`` is looked up by name as given (an ``email.message.Message``, such as
    ``BaseHTTPRequestHandler.headers``, ignores case).
    """
    if source.signature is Scheme.GITHUB:
        _github(secret, headers, body)
    elif source.signature is Scheme.STRIPE:
        _stripe(secret, headers, body, now, source.tolerance_seconds)
    else:
        _generic(source, secret, headers, body)


def sign(source: Source, secret: bytes, body: bytes, now: float) -> dict[str, str]:
    """The headers a sender would add (for tests, and for ``curl`` examples)."""
    if source.signature is Scheme.GITHUB:
        return {GITHUB_HEADER: "sha256=" + _digest(secret, body).hex()}
    if source.signature is Scheme.STRIPE:
        stamp = str(int(now))
        return {
            STRIPE_HEADER: f"t={stamp},v1={_digest(secret, stamp.encode() + b'.' + body).hex()}"
        }
    digest = _digest(secret, body)
    text = (
        base64.b64encode(digest).decode() if source.signature_encoding == "base64" else digest.hex()
    )
    return {source.signature_header: source.signature_prefix + text}


def json_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (an event payload); Rejected 400 otherwise."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Rejected(400, f"invalid JSON body: {err}") from None
    if not isinstance(data, dict):
        raise Rejected(400, f"the body must be a JSON object, not {type(data).__name__}")
    return data


def pick(rule: Pick, headers: Headers, data: dict[str, Any]) -> str | None:
    """The value ``rule`` names, as text; None when the header or the member is absent."""
    if rule.value is not None:
        return rule.value
    if rule.header is not None:
        found = headers.get(rule.header)
        return found.strip() or None if found is not None else None
    value: Any = data
    for step in rule.steps:
        value = _member(value, step)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float) and str(value):
        return str(value)
    return None  # null, an object or a list: not a key


_ABSENT = object()


def _member(value: Any, step: int | str) -> Any:
    """``value[step]`` where it exists (a list index, an object member); else _ABSENT."""
    if isinstance(step, int):
        return value[step] if isinstance(value, list) and step < len(value) else _ABSENT
    return value.get(step, _ABSENT) if isinstance(value, dict) else _ABSENT


def event_key(source: Source, headers: Headers, data: dict[str, Any]) -> str:
    """The event key (with the source's prefix); Rejected 422 when it is missing."""
    found = pick(source.key, headers, data)
    if found is None:
        raise Rejected(
            422, f"no event key: {source.key.describe()} is missing, empty or not a string"
        )
    return source.key_prefix + found
