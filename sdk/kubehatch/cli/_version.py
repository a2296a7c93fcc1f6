"""``kubehatch --version``: the SDK's version, and the operator's when the cluster answers.

The operator's is read from its Deployment, which the Helm chart labels
``app.kubernetes.io/part-of=kubehatch`` and ``app.kubernetes.io/component=operator``, with
its version in ``app.kubernetes.io/version`` (the chart's appVersion); the image tag is
shown beside it, since ``--set image.tag`` may run another build than the label says.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

OPERATOR_SELECTOR = "app.kubernetes.io/part-of=kubehatch,app.kubernetes.io/component=operator"
VERSION_LABEL = "app.kubernetes.io/version"
TIMEOUT_SECONDS = 5


def sdk_version() -> str:
    import kubehatch

    return str(kubehatch.__version__)


def operator_lines(deployments: Sequence[Any]) -> list[str]:
    """One line per operator Deployment: its version, where it runs, its image."""
    lines = []
    for deployment in deployments:
        meta = deployment.metadata
        labels = meta.labels or {}
        containers = deployment.spec.template.spec.containers if deployment.spec else []
        image = containers[0].image if containers else "?"
        version = labels.get(VERSION_LABEL) or image.rpartition(":")[2] or "unknown"
        lines.append(f"operator {version} ({meta.namespace}/{meta.name}, image {image})")
    return lines


def operator_versions() -> list[str]:
    """What ``--version`` says of the operator: its Deployments, or why none is shown."""
    try:
        from kubernetes import client as k8s

        from kubehatch.client import Client

        api = k8s.AppsV1Api(Client().api_client)
        try:
            found = api.list_deployment_for_all_namespaces(
                label_selector=OPERATOR_SELECTOR, _request_timeout=TIMEOUT_SECONDS
            ).items
        except k8s.ApiException as err:
            if err.status != 403:
                raise
            namespace = Client().namespace  # may not list all namespaces: try the current one
            found = api.list_namespaced_deployment(
                namespace, label_selector=OPERATOR_SELECTOR, _request_timeout=TIMEOUT_SECONDS
            ).items
    except Exception as err:  # no kubeconfig, no answer, no permission: say so, briefly
        first = next(iter(str(err).strip().splitlines()), type(err).__name__)
        return [f"operator: not reachable ({first[:160]})"]
    return operator_lines(found) or [
        f"operator: none found (no Deployment with {OPERATOR_SELECTOR})"
    ]


class VersionAction(argparse.Action):
    """``--version``: print the versions and exit (the operator's only if asked to look)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the SDK's version and the operator's (if reachable)")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"kubehatch {sdk_version()} (SDK and CLI, Python {sys.version.split()[0]})")
        for line in operator_versions():
            print(line)
        parser.exit(0)
