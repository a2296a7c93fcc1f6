"""Whose credentials a dashboard request uses.

- :class:`KubeconfigAccess` (``kubehatch ui`` on a laptop): the user's kubeconfig, one
  client for every request: the user's own rights, nothing to configure.
- :class:`TokenAccess` (the chart's in-cluster Deployment): each request's own bearer
  token (the ``Authorization`` header an authenticating proxy sets, or the token a user
  pasted into the sign-in form, kept in an HttpOnly cookie) is the one the API calls
  carry. The server never reads a ServiceAccount token of its own (the chart mounts none):
  a request without a token is refused, not served with the server's rights.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from kubehatch.errors import KubehatchError
from kubehatch.ui.backend import Backend, UiError

COOKIE = "kubehatch-token"
SERVICE_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
CLIENTS_KEPT = 64


def cookie_token(header: str | None) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == COOKIE and value:
            return value
    return None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The request's token: ``Authorization: Bearer ...``, else the sign-in cookie."""
    auth = headers.get("Authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return cookie_token(headers.get("Cookie"))


class KubeconfigAccess:
    """Every request as the kubeconfig's user (``kubehatch ui``)."""

    tokens: bool = False
    user: str | None = None

    def __init__(self, context: str | None = None) -> None:
        from kubernetes import client, config

        try:
            config.load_kube_config(context=context)
            _, current = config.list_kube_config_contexts()
        except Exception as err:
            raise KubehatchError(f"no cluster to talk to ({err}); set KUBECONFIG") from err
        chosen = context or (current or {}).get("name")
        contexts = {c["name"]: c for c in config.list_kube_config_contexts()[0]}
        found = contexts.get(chosen) or current or {}
        self.namespace = found.get("context", {}).get("namespace") or "default"
        self.user = found.get("context", {}).get("user")
        self._backend = Backend(client.ApiClient())

    def backend(self, headers: Mapping[str, str]) -> Backend:
        return self._backend


class TokenAccess:
    """Every request as the bearer of its own token (in the cluster)."""

    tokens: bool = True
    user: str | None = None

    def __init__(self, host: str | None = None, ca_file: str | None = None) -> None:
        if host is None:
            service = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not service:
                raise KubehatchError(
                    "--auth token needs the API server's address: run in a pod, or set "
                    "KUBERNETES_SERVICE_HOST"
                )
            service = f"[{service}]" if ":" in service else service  # IPv6
            host = f"https://{service}:{port}"
        self.host = host
        self.ca_file = (
            ca_file
            if ca_file is not None
            else (os.environ.get("KUBEHATCH_UI_CA_FILE") or SERVICE_CA)
        )
        self.namespace = os.environ.get("KUBEHATCH_UI_NAMESPACE") or "default"
        self._clients: OrderedDict[str, Backend] = OrderedDict()
        self._lock = threading.Lock()

    def _api_client(self, token: str) -> Any:
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.host
        if self.ca_file and os.path.exists(self.ca_file):
            configuration.ssl_ca_cert = self.ca_file
        configuration.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(configuration)

    def backend(self, headers: Mapping[str, str]) -> Backend:
        token = bearer_token(headers)
        if not token:
            raise UiError(
                401,
                "sign in: this dashboard acts with your own Kubernetes token (kubectl create "
                "token NAME, or your identity provider's), never with rights of its own",
            )
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                found = self._clients[key] = Backend(self._api_client(token))
                while len(self._clients) > CLIENTS_KEPT:
                    self._clients.popitem(last=False)  # in use elsewhere: not closed
            self._clients.move_to_end(key)
            return found
