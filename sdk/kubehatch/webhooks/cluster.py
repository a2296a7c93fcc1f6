"""The receiver's side of the cluster: signing secrets read from Secrets, events pushed.

It needs exactly two rights (the chart's Roles): ``get`` on the named Secrets in its own
namespace, and ``create`` on workflowevents in the namespaces its sources send to.
Events are created by :meth:`kubehatch.client.EventClient.push`, as ``kubehatch event
push`` does: same object, same checks. That call also lists the namespace's Workflows to
check the payload against their input schemas; without ``list`` on workflows (the chart
grants none) the API server answers 403 and the check is left to the operator.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from kubehatch.webhooks.config import SecretRef
from kubehatch.webhooks.verify import Rejected

if TYPE_CHECKING:
    from kubehatch.client import Client

log = logging.getLogger("kubehatch.webhooks")

SECRET_TTL = 60.0
"""Seconds a signing secret is kept before it is read again: a rotated Secret is used
within a minute, without a restart, and a flood of requests costs no API calls."""


class Cluster:
    """Secrets and event pushes for a receiver in ``namespace`` (None: the current one)."""

    def __init__(self, namespace: str | None = None, *, secret_ttl: float = SECRET_TTL) -> None:
        from kubernetes import client as k8s

        from kubehatch.client import Client

        self._home = Client(namespace=namespace)
        self.namespace = self._home.namespace
        self._clients: dict[str, Client] = {self.namespace: self._home}
        self._core = k8s.CoreV1Api(self._home.api_client)
        self._ttl = secret_ttl
        self._secrets: dict[tuple[str, str], tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def secret(self, ref: SecretRef) -> bytes:
        """The value of ``ref`` (trailing newlines dropped); Rejected 503 if unavailable."""
        now = time.monotonic()
        with self._lock:
            cached = self._secrets.get((ref.name, ref.key))
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        value = self._read(ref)
        with self._lock:
            self._secrets[(ref.name, ref.key)] = (now, value)
        return value

    def _read(self, ref: SecretRef) -> bytes:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        where = f"secret {self.namespace}/{ref.name}"
        try:
            secret: Any = self._core.read_namespaced_secret(ref.name, self.namespace)
        except (ApiException, HTTPError) as err:
            log.error("cannot read %s: %s", where, getattr(err, "reason", None) or err)
            raise Rejected(503, "the source's signing secret cannot be read") from None
        encoded = (secret.data or {}).get(ref.key)
        if not encoded:
            log.error("%s has no key %r (or it is empty)", where, ref.key)
            raise Rejected(503, "the source's signing secret cannot be read")
        return base64.b64decode(encoded).rstrip(b"\r\n")

    def check_secrets(self, refs: list[SecretRef]) -> None:
        """Log, at start-up, every secret that cannot be read yet (requests will get 503)."""
        for ref in refs:
            with contextlib.suppress(Rejected):  # logged by _read
                self.secret(ref)

    def push(
        self, namespace: str | None, key: str, payload: dict[str, Any], metadata: dict[str, str]
    ) -> str:
        """Create the WorkflowEvent; its name."""
        return self._client(namespace or self.namespace).event.push(key, payload, metadata=metadata)

    def _client(self, namespace: str) -> Client:
        from kubehatch.client import Client

        with self._lock:
            if namespace not in self._clients:
                self._clients[namespace] = Client(namespace, api_client=self._home.api_client)
            return self._clients[namespace]
