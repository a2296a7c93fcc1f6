"""API errors as one line: what failed, on which object, and what to do about it.

The kubernetes client raises ApiException with the API server's Status in its body, or
urllib3 errors when nothing answered; the CLI prints neither as a traceback.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kubernetes.client import V1Pod

from kubehatch.api import wire
from kubehatch.errors import KubehatchError


class ApiError(KubehatchError):
    """The API server refused (``status``: its HTTP code) or did not answer (None); one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def explain(
    err: Exception, verb: str, plural: str, name: str | None, namespace: str, host: str
) -> ApiError:
    """One line on a failed API call (``verb`` and ``plural`` as RBAC spells them): what
    failed and what to do. ``err`` is an ApiException (an answer) or a urllib3 error (none)."""
    status = getattr(err, "status", None)
    if not isinstance(status, int):
        reason = getattr(err, "reason", None) or err  # MaxRetryError: the last failure
        text = re.sub(r"^\w*Connection\(host=[^)]*\):\s*", "", one_line(str(reason)))
        return ApiError(f"cannot reach the cluster at {host}: {text}; check KUBECONFIG")
    body = status_body(err)
    details, message = wire.mapping(body.get("details")), status_message(err)
    kind, name = plural.split("/")[0][:-1], details.get("name") or name
    where = f" in namespace {namespace!r}"
    if status == 401:
        text = f"the cluster at {host} refused your credentials ({message}); check KUBECONFIG"
    elif status == 403:
        can_i = f"kubectl auth can-i {verb} {plural} -n {namespace}"
        text = f"forbidden: you may not {verb} {plural}{where} ({can_i})"
    elif status == 404 and details.get("kind") == "namespaces":
        text = f"namespace {name!r} does not exist"
    elif status == 404 and body.get("reason") == "NotFound" and name:
        text = f"{kind} {name!r} not found{where}; kubectl get {plural} -n {namespace} lists them"
    elif status == 404:
        text = "the cluster has no kubehatch CRDs: install the chart (charts/kubehatch)"
    elif status == 409 and body.get("reason") == "AlreadyExists":
        text = f"{kind} {name!r} already exists{where}; pick another name"
    else:  # 422 Invalid, 410 Gone, 429, 5xx...
        text = f"cannot {verb} {plural}{where}: the API server answered {status} {message}"
    return ApiError(text, status)


def status_body(err: Exception) -> dict[str, Any]:  # the API server's Status, if any
    try:
        return wire.mapping(json.loads(getattr(err, "body", None) or "{}"))
    except (TypeError, ValueError):
        return {}


def status_message(err: Exception) -> str:
    body = getattr(err, "body", None)
    fallback = body if isinstance(body, str) and body.strip() else getattr(err, "reason", "")
    return one_line(str(status_body(err).get("message") or fallback))


def not_started(pod: V1Pod) -> str | None:
    """Why the pod's container has not started ("reason: message"), or None if it has."""
    if (status := pod.status) is None:
        return "Pending: not scheduled yet"
    containers = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    for container in containers:
        if waiting := container.state and container.state.waiting:
            return reason(waiting.reason or "Waiting", waiting.message)
    if status.phase not in (None, "Pending") or containers:
        return None
    for condition in status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return reason(condition.reason or "Unschedulable", condition.message)
    return "Pending: not started yet"


def reason(reason: str, message: str | None) -> str:
    return f"{reason}: {one_line(message)}" if message else reason


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())
