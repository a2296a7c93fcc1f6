"""The chart's dashboard (values.yaml: ui): off by default; when on, a pod with no rights
of its own (no Role, no RoleBinding, no mounted token) running `kubehatch ui --auth token`.

Rendered with `helm template` as in test_helm_chart.py (skipped without helm).
"""

from __future__ import annotations

from tests.unit.chart import test_helm_chart as chart

pytestmark = chart.pytestmark
NAME = f"{chart.FULLNAME}-ui"


def test_off_by_default() -> None:
    docs = chart.render()
    assert not [d for d in docs if d["metadata"]["name"] == NAME]


def test_the_dashboard_has_no_rights_of_its_own() -> None:
    docs = chart.render("ui.enabled=true")
    account = chart.one(docs, "ServiceAccount", NAME, chart.NAMESPACE)
    assert account["automountServiceAccountToken"] is False
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in chart.of_kind(docs, kind):
            names = {s.get("name") for s in binding.get("subjects") or []}
            assert NAME not in names, binding["metadata"]["name"]
    pod = chart.one(docs, "Deployment", NAME, chart.NAMESPACE)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == NAME and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"][:4] == ["kubehatch", "ui", "--auth", "token"]
    assert pod["volumes"] == [{"name": "cluster-ca", "configMap": {"name": "kube-root-ca.crt"}}]
    service = chart.one(docs, "Service", NAME, chart.NAMESPACE)
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "ui"
