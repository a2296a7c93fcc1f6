"""API calls from inside a pod, with the pod's ServiceAccount and the standard library only.

A step pod makes one kind of API call: it creates its output ConfigMap (or, for a large
output, its parts and then its head, one call each). The kubernetes client
costs more than most short steps to import and set up (its hundreds of models), and a node
runs many step pods at once; this module costs ``ssl`` and a minimal HTTP/1.1 exchange
(:mod:`kubehatch._http1`: ``http.client`` would load the ``email`` package). It finds the
API server as the client's in-cluster configuration does: the mounted ServiceAccount's token
and CA, and KUBERNETES_SERVICE_HOST and _PORT.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubehatch._http1 import ProtocolError, host_header, request
from kubehatch.errors import KubehatchError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE = SERVICE_ACCOUNT_DIR / "token"
CA_FILE = SERVICE_ACCOUNT_DIR / "ca.crt"
ENV_HOST = "KUBERNETES_SERVICE_HOST"
ENV_PORT = "KUBERNETES_SERVICE_PORT"

ATTEMPTS = 5
"""Tries of one call, when it fails in a way that may pass (no answer, 429, 5xx)."""
BACKOFF_SECONDS = 0.25
"""Wait before the first retry, doubled for each next one (with jitter: many pods retry)."""
MAX_RETRY_AFTER_SECONDS = 10.0
"""An API server's Retry-After is obeyed up to this (a step's timeout is still counting)."""
TIMEOUT_SECONDS = 30.0
"""Per attempt, to connect and for each read: a hung connection is retried, not waited on."""

Connect = Callable[[str, int, ssl.SSLContext | None, float], socket.socket]
"""(host, port, TLS context, timeout) -> a connected socket, its reads and writes timing out
after ``timeout``. Tests give plain TCP."""


class InClusterError(KubehatchError):
    """The API server refused a call (``status``: its HTTP code) or never answered (None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def https_connection(
    host: str, port: int, context: ssl.SSLContext | None, timeout: float
) -> socket.socket:
    """The real connection: TLS, verified against the ServiceAccount's CA and the host
    (without a context, the system's CAs, as http.client's HTTPSConnection does)."""
    # An ASCII host (the pod's KUBERNETES_SERVICE_HOST is an IP address) as bytes: as a str,
    # socket and ssl encode it with the idna codec, to the same bytes, importing that codec
    # (and unicodedata) in every step pod.
    name = host.encode("ascii") if host.isascii() else host
    sock = socket.create_connection((name, port), timeout)  # type: ignore[arg-type]  # bytes do
    try:
        return (context or ssl.create_default_context()).wrap_socket(sock, server_hostname=name)
    except BaseException:
        sock.close()
        raise


@dataclass(frozen=True)
class Server:
    """Where the API server is and how to prove who we are, as the pod has them mounted."""

    host: str
    """Without brackets, even for IPv6 (the Host header and :attr:`url` add them)."""
    port: int
    token: str = field(repr=False)  # a credential: never in a log or a termination message
    context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @classmethod
    def from_pod(
        cls,
        env: Mapping[str, str] | None = None,
        token_file: Path = TOKEN_FILE,
        ca_file: Path | None = CA_FILE,
    ) -> Server:
        """From the pod's environment and ServiceAccount files (``ca_file=None``: no TLS
        context, for tests that talk plain HTTP)."""
        env = os.environ if env is None else env
        host = env.get(ENV_HOST, "").strip().removeprefix("[").removesuffix("]")
        port_text = env.get(ENV_PORT, "").strip() or "443"
        if not host:
            raise InClusterError(f"{ENV_HOST} is not set: not running in a Kubernetes pod")
        try:
            port = int(port_text)
        except ValueError:
            raise InClusterError(f"{ENV_PORT} is not a port number: {port_text!r}") from None
        token = _read(token_file).strip()
        if not token:
            raise InClusterError(f"the ServiceAccount token {str(token_file)!r} is empty")
        context = None
        if ca_file is not None:
            _read(ca_file)  # a missing CA, said plainly rather than as an ssl error
            context = ssl.create_default_context(cafile=str(ca_file))
        return cls(host, port, token, context)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise InClusterError(
            f"cannot read {str(path)!r} ({err.strerror}): is the pod's ServiceAccount token "
            "mounted (automountServiceAccountToken)?"
        ) from err


def create(
    server: Server,
    path: str,
    body: Mapping[str, Any],
    *,
    what: str,
    connect: Connect = https_connection,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """POST ``body`` to ``path``: True when created, False when it already exists (409).

    Retries what may pass (no answer, 429, 5xx); anything else raises InClusterError with
    the API server's own message, ``what`` (e.g. "ConfigMap ns/name") saying what failed.
    """
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {
        "Host": host_header(server.host, server.port),
        "Accept-Encoding": "identity",
        "Authorization": f"Bearer {server.token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "kubehatch-step",
    }
    for attempt in range(1, attempts + 1):
        sock: socket.socket | None = None
        try:
            sock = connect(server.host, server.port, server.context, TIMEOUT_SECONDS)
            # A success echoes the object (up to 1 MiB): not worth reading.
            response = request(sock, "POST", path, headers, data, read_body=_is_failure)
        except ssl.SSLCertVerificationError as err:  # a wrong CA or host does not get better
            raise InClusterError(
                f"cannot create {what}: the API server at {server.url} fails verification "
                f"with the ServiceAccount's CA: {err}"
            ) from err
        except (OSError, ProtocolError) as err:
            if attempt == attempts:
                raise InClusterError(
                    f"cannot create {what}: no answer from the API server at {server.url} "
                    f"after {attempts} attempts: {type(err).__name__}: {err}"
                ) from err
            sleep(_backoff(attempt))
            continue
        finally:
            if sock is not None:
                sock.close()
        status = response.status
        if 200 <= status < 300:
            return True
        if status == 409:
            return False
        message = f"the API server answered {status} {response.reason}: "
        message += status_message(response.body)
        if (status == 429 or status >= 500) and attempt < attempts:
            sleep(_retry_after(response.headers.get("retry-after"), _backoff(attempt)))
            continue
        raise InClusterError(f"cannot create {what}: {message}", status)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _is_failure(status: int) -> bool:
    return status >= 300


def _backoff(attempt: int) -> float:
    """The wait after a failed ``attempt``: doubling, with jitter (many pods may retry)."""
    import random  # here: most steps never retry

    return BACKOFF_SECONDS * 2.0 ** (attempt - 1) * random.uniform(0.5, 1.0)


def status_message(text: bytes) -> str:
    """The ``message`` of the API server's Status, else the start of whatever it sent."""
    try:
        status = json.loads(text)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return " ".join(text.decode(errors="replace").split())[:300] or "(no body)"


def _retry_after(header: str | None, default: float) -> float:
    """Retry-After in seconds (its HTTP-date form falls back to ``default``), capped."""
    try:
        seconds = float(int(header)) if header else default
    except ValueError:
        seconds = default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
