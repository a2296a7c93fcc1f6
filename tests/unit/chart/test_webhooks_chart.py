"""The chart's webhook receiver (values.yaml: webhooks): off by default, least privilege,
restricted pods, its sources in a ConfigMap that `kubehatch webhook serve` accepts.

Rendered with `helm template` as in test_helm_chart.py (skipped without helm).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubehatch.webhooks.config import parse_config
from tests.unit.chart import test_helm_chart as chart

pytestmark = chart.pytestmark
NAME = f"{chart.FULLNAME}-webhooks"
NS = chart.NAMESPACE
SOURCES = [
    {
        "name": "github",
        "secret": {"name": "github-webhook"},
        "signature": "github",
        "key": {"header": "X-GitHub-Event"},
        "keyPrefix": "github:",
    },
    {
        "name": "stripe",
        "secret": {"name": "stripe-webhook", "key": "signing"},
        "signature": "stripe",
        "key": {"jsonPath": "$.type"},
        "namespace": "billing",
    },
    {
        "name": "acme",
        "secret": {"name": "github-webhook"},
        "signature": "hmac-sha256",
        "signatureHeader": "X-Acme-Signature",
        "signatureEncoding": "base64",
        "key": {"value": "acme:ping"},
        "namespace": "billing",
    },
]


def render_values(values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`helm template` with ``values`` as a values file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "values.json"
        path.write_text(json.dumps(values))
        return chart.helm(
            "template", chart.RELEASE, str(chart.CHART), "-n", NS,
            "--kube-version", chart.KUBE_VERSION, "--api-versions", chart.VAP_API, "-f", str(path),
        )  # fmt: skip


@cache
def _docs(values_json: str) -> tuple[dict[str, Any], ...]:
    result = render_values(json.loads(values_json))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def docs(**webhooks: Any) -> list[dict[str, Any]]:
    values = {"webhooks": {"enabled": True, "sources": SOURCES, **webhooks}}
    return list(_docs(json.dumps(values)))


def webhook_objects(rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in rendered
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "webhooks"
    ]


def test_off_by_default() -> None:
    assert webhook_objects(chart.render()) == []
    assert not [d for d in chart.render() if "webhooks" in d["metadata"]["name"]]


def test_enabled_renders_a_deployment_service_account_and_config() -> None:
    rendered = docs()
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in webhook_objects(rendered))
    assert kinds == sorted(
        [
            ("ConfigMap", NAME),
            ("Deployment", NAME),
            ("Service", NAME),
            ("ServiceAccount", NAME),
            ("Role", f"{NAME}-secrets"),
            ("RoleBinding", f"{NAME}-secrets"),
            ("Role", f"{NAME}-events"),
            ("RoleBinding", f"{NAME}-events"),
            ("Role", f"{NAME}-events"),
            ("RoleBinding", f"{NAME}-events"),
        ]
    )
    service = chart.one(rendered, "Service", NAME, NS)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    pod = chart.one(rendered, "Deployment", NAME, NS)["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    # The operator's Service and Deployment never select the receiver's pods.
    operator = chart.one(rendered, "Deployment", chart.FULLNAME, NS)
    assert (
        not operator["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )


def test_the_config_map_is_a_configuration_the_receiver_accepts() -> None:
    config_map = chart.one(docs(maxBodyBytes=2048), "ConfigMap", NAME, NS)
    config = parse_config(json.loads(config_map["data"]["config.json"]))
    assert config.max_body_bytes == 2048
    assert [s.name for s in config.sources] == ["github", "stripe", "acme"]
    stripe = config.source("stripe")
    assert stripe is not None and stripe.secret.key == "signing"
    assert stripe.namespace == "billing"


def test_the_pod_runs_the_cli_in_the_operator_image_with_probes() -> None:
    rendered = docs()
    spec = chart.one(rendered, "Deployment", NAME, NS)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    operator_image = chart.operator_container(rendered)["image"]
    assert container["image"] == operator_image
    assert container["command"] == ["kubehatch", "webhook", "serve"]
    assert container["args"] == [
        "--config=/etc/kubehatch/webhooks/config.json",
        "--port=8080",
        f"--namespace={NS}",
    ]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert spec["serviceAccountName"] == NAME
    other = docs(image="localhost/other:1")
    (container,) = chart.one(other, "Deployment", NAME, NS)["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == "localhost/other:1"


def test_the_pod_meets_the_restricted_pod_security_standard() -> None:
    spec = chart.one(docs(), "Deployment", NAME, NS)["spec"]["template"]["spec"]
    assert chart.restricted_violations(spec) == []
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_changed_config_rolls_the_pods() -> None:
    def stamp(rendered: list[dict[str, Any]]) -> str:
        template = chart.one(rendered, "Deployment", NAME, NS)["spec"]["template"]
        return str(template["metadata"]["annotations"]["kubehatch.dev/webhooks-config"])

    assert stamp(docs()) != stamp(docs(maxBodyBytes=10))


# --- RBAC ------------------------------------------------------------------------------------


def test_it_may_get_only_the_named_secrets_in_its_namespace() -> None:
    rendered = docs()
    role = chart.one(rendered, "Role", f"{NAME}-secrets", NS)
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["github-webhook", "stripe-webhook"],
            "verbs": ["get"],
        }
    ]
    binding = chart.one(rendered, "RoleBinding", f"{NAME}-secrets", NS)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": f"{NAME}-secrets",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": NS}]


def test_it_may_create_events_only_where_its_sources_send_them() -> None:
    rendered = docs()
    for namespace in (NS, "billing"):
        role = chart.one(rendered, "Role", f"{NAME}-events", namespace)
        assert chart.grants(role["rules"]) == {("kubehatch.dev", "workflowevents", "create")}
        binding = chart.one(rendered, "RoleBinding", f"{NAME}-events", namespace)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": NS}]
    # Everything the receiver's account is granted, anywhere: exactly these two rules.
    names = {d["metadata"]["name"] for d in chart.of_kind(rendered, "RoleBinding")}
    mine = {
        f"{d['roleRef']['kind']}/{d['roleRef']['name']}"
        for d in chart.of_kind(rendered, "RoleBinding")
        + chart.of_kind(rendered, "ClusterRoleBinding")
        if any(s["name"] == NAME for s in d["subjects"])
    }
    assert mine == {f"Role/{NAME}-secrets", f"Role/{NAME}-events"}
    assert f"{NAME}-events" in names


def test_no_sources_no_secret_rights() -> None:
    rendered = docs(sources=[])
    assert not [
        d for d in chart.of_kind(rendered, "Role") if d["metadata"]["name"] == f"{NAME}-secrets"
    ]
    assert chart.one(rendered, "Deployment", NAME, NS)


def test_rbac_create_false_renders_no_webhook_roles() -> None:
    result = render_values(
        {"rbac": {"create": False}, "webhooks": {"enabled": True, "sources": SOURCES}}
    )
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(result.stdout) if d}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def test_its_account_can_never_run_steps() -> None:
    values = {
        "webhooks": {"enabled": True, "sources": SOURCES},
        "stepServiceAccount": {"allowed": [NAME]},
    }
    result = render_values(values)
    assert result.returncode != 0
    assert "webhook receiver's ServiceAccount" in result.stderr


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ({**SOURCES[0], "signature": "gitlab"}, "signature"),
        ({**SOURCES[0], "key": {}}, "key"),
        ({**SOURCES[0], "key": {"header": "A", "value": "b"}}, "key"),
        ({**SOURCES[0], "key": {"jsonPath": "type"}}, "jsonPath"),
        ({**SOURCES[0], "name": "Not_A_Name"}, "name"),
        ({k: v for k, v in SOURCES[0].items() if k != "secret"}, "secret"),
        ({**SOURCES[0], "unknown": 1}, "unknown"),
    ],
)
def test_schema_rejects_bad_sources(source: dict[str, Any], complaint: str) -> None:
    result = render_values({"webhooks": {"enabled": True, "sources": [source]}})
    assert result.returncode != 0
    assert complaint in result.stderr
