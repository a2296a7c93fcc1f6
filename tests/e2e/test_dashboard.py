"""The dashboard in a real headless Chromium (Debian's chromium, driven over the DevTools
protocol) against ``kubehatch ui`` on the local cluster: the runs list shows a run the
test started, the run page draws its DAG and turns a step green when its Job completes
(no reload), the logs pane shows what the step printed, cancel from the page cancels the
run, and a read-only user sees the API server's denial. Screenshots go to docs/screenshots/.

Also, with no cluster: a 1,000-step run (more than a Workflow may hold today, served by
the real server over a fake API) renders in under a second, and the graph is keyboard
navigable."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kubehatch import workflow_manifests
from tests.e2e import kube
from tests.e2e.browser import Browser, executable
from tests.e2e.support import REPO_ROOT
from tests.e2e.workers import dashboard

SHOTS = REPO_ROOT / "docs" / "screenshots"
needs_browser = pytest.mark.skipif(
    executable() is None, reason="no chromium (make browser installs Debian's)"
)
pytestmark = [pytest.mark.e2e, needs_browser]
FINAL = {"Succeeded", "Failed", "Cancelled", "TimedOut"}


@contextlib.contextmanager
def dashboard_server(namespace: str, kubeconfig: str) -> Iterator[str]:
    """``kubehatch ui --port 0`` as a user starts it; its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubehatch.cli", "ui", "--port", "0", "-n", namespace],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "KUBECONFIG": kubeconfig},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"serving (http://\S+)", line)
        assert found, f"kubehatch ui printed {line!r}"
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        yield b
    finally:
        b.close()


def viewer_kubeconfig(namespace: str, admin: str, path: Path) -> str:
    """A kubeconfig for a ServiceAccount that may read runs, workflows, pods and logs of
    ``namespace``, and change nothing."""
    core, rbac = client.CoreV1Api(), client.RbacAuthorizationV1Api()
    name = "dashboard-viewer"
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    rules = [
        client.V1PolicyRule(
            api_groups=["kubehatch.dev"],
            verbs=["get", "list", "watch"],
            resources=["workflows", "workflowruns", "workflowevents"],
        ),
        client.V1PolicyRule(
            api_groups=[""],
            verbs=["get", "list", "watch"],
            resources=["pods", "pods/log", "events", "configmaps"],
        ),
    ]
    rbac.create_namespaced_role(namespace, client.V1Role(metadata={"name": name}, rules=rules))
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata={"name": name},
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=name
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        ),
    )
    token = core.create_namespaced_service_account_token(
        name, namespace, client.AuthenticationV1TokenRequest(spec={"expirationSeconds": 3600})
    ).status.token
    config = yaml.safe_load(Path(admin).read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == current["context"]["cluster"])
    server = dict(cluster["cluster"])
    if "certificate-authority" in server:  # inline it: the file path is the admin's
        ca = Path(server.pop("certificate-authority")).read_bytes()
        server["certificate-authority-data"] = base64.b64encode(ca).decode()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "viewer",
                "clusters": [{"name": "c", "cluster": server}],
                "users": [{"name": "viewer", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "viewer",
                        "context": {"cluster": "c", "user": "viewer", "namespace": namespace},
                    }
                ],
            }
        )
    )
    return str(path)


@pytest.mark.usefixtures("operator")
def test_the_dashboard_on_the_cluster(
    op_namespace: str, step_image: str, kubeconfig: str, browser: Browser, tmp_path: Path
) -> None:
    ns = op_namespace
    (manifest,) = [
        m
        for m in workflow_manifests(dashboard.worker, worker_ref=dashboard.WORKER_REF)
        if m["metadata"]["name"] == "dashboard"
    ]
    kube.apply_workflow(ns, manifest, step_image)
    with dashboard_server(ns, kubeconfig) as url:
        kube.create_run(ns, "dash-1", "dashboard", {"pause": 12})
        # The runs list shows the run the test started.
        browser.go(f"{url}#/runs")
        browser.wait(
            f"!!document.querySelector('tr[data-run=\"{ns}/dash-1\"]')", 30, "the run's row"
        )
        browser.screenshot(SHOTS / "runs.png")
        # Its page: the DAG, a step turning green without a reload.
        browser.click(f"tr[data-run='{ns}/dash-1'] a")
        browser.wait("!!document.querySelector(\"g.node[data-step='hello']\")", 30, "the DAG")
        browser.js("window.__sameDocument = 1")
        phase = browser.js("document.querySelector(\"g.node[data-step='hello']\").dataset.phase")
        assert phase != "Succeeded", "the step finished before the page could see it change"
        browser.click("g.node[data-step='hello']")
        browser.wait(
            "document.querySelector(\"g.node[data-step='hello']\").dataset.phase === 'Succeeded'",
            150,
            "step hello to turn Succeeded on the page",
        )
        assert browser.js("window.__sameDocument") == 1, "the page was reloaded"
        fill = browser.js(
            "getComputedStyle(document.querySelector(\"g.node[data-step='hello'] rect\")).fill"
        )
        assert fill == "rgb(187, 247, 208)", fill  # green
        label = browser.js("document.querySelector(\"g.node[data-step='hello']\").textContent")
        assert "Succeeded" in label  # in words too, not colour alone
        # The logs pane shows what the step printed (reselect: the pane follows one attempt).
        has_line = f"document.querySelector('#log').textContent.includes({dashboard.LINE!r})"
        try:
            browser.wait(has_line, 20, "the step's line in the logs pane")
        except AssertionError:
            browser.click("g.node[data-step='hello']")
            browser.wait(has_line, 30, "the step's line in the logs pane")
        browser.wait(
            "document.querySelector(\"g.node[data-step='slow']\").dataset.phase === 'Running'",
            60,
            "step slow to run",
        )
        browser.wait(
            "!!document.querySelector('#output') && "
            "document.querySelector('#output').textContent.includes('greeting')",
            20,
        )
        browser.screenshot(SHOTS / "run.png")
        # Cancel from the page cancels the run.
        browser.click("#cancel")
        browser.click("#cancel-yes")
        done = kube.wait_for_phase(ns, "dash-1", FINAL, timeout=90)
        assert done["status"]["phase"] == "Cancelled", done["status"].get("conditions")
        browser.wait("document.querySelector('#run-phase').textContent.includes('Cancelled')", 30)

    # A user without rights sees the API server's denial.
    kube.create_run(ns, "dash-2", "dashboard", {"pause": 60})
    viewer = viewer_kubeconfig(ns, kubeconfig, tmp_path / "viewer.kubeconfig")
    with dashboard_server(ns, viewer) as url:
        browser.go(f"{url}#/runs/{ns}/dash-2")
        browser.wait("!!document.querySelector('#cancel')", 30, "the cancel button")
        browser.click("#cancel")
        browser.click("#cancel-yes")
        text = browser.wait(
            "!document.querySelector('#alert').hidden && "
            "document.querySelector('#alert').innerText",
            30,
            "the denial",
        )
        assert "forbidden" in text and "cannot patch resource" in text, text
        assert "system:serviceaccount" in text, text  # the API server's own words
        browser.screenshot(SHOTS / "denied.png")
    assert kube.get_run(ns, "dash-2")["spec"].get("cancel") is not True
    client.CustomObjectsApi().patch_namespaced_custom_object(
        kube.GROUP, kube.VERSION, ns, "workflowruns", "dash-2", {"spec": {"cancel": True}}
    )


# --- 1,000 steps, no cluster ----------------------------------------------------------------
class FakeAccess:
    tokens = False
    user = "tester"
    namespace = "default"

    def __init__(self, api_client: Any) -> None:
        from kubehatch.ui.backend import Backend

        self._backend = Backend(api_client)

    def backend(self, headers: Any) -> Any:
        return self._backend


def big_run(width: int = 20, depth: int = 50) -> dict[str, Any]:
    """A run of width x depth steps, each joined to two steps of the layer before."""
    from tests.unit.sdk.ui.fakekube import run

    names = [[f"l{d:02d}-s{i:02d}" for i in range(width)] for d in range(depth)]
    spec, steps = [], {}
    phases = ["Succeeded", "Running", "Pending", "Failed", "Retrying", "Skipped"]
    for d, layer in enumerate(names):
        for i, name in enumerate(layer):
            parents = [names[d - 1][i], names[d - 1][(i + 1) % width]] if d else []
            spec.append({"name": name, "parents": parents, "action": "m:f"})
            steps[name] = {
                "phase": phases[(d * width + i) % len(phases)],
                "attempts": 1,
                "startedAt": "2025-01-01T00:00:00Z",
            }
    return run("big", "big", phase="Running", steps=steps, spec_steps=spec)


def test_a_1000_step_run_is_drawn_whole_and_keyboard_navigable(browser: Browser) -> None:
    """Its timings are printed, not asserted (speed belongs to benchmarks)."""
    from kubehatch.ui.server import make_server
    from tests.unit.sdk.ui.fakekube import FakeApiClient

    fake = FakeApiClient()
    fake.add("workflowruns", big_run())
    server = make_server(FakeAccess(fake), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        timings = []
        for _ in range(3):  # the first load also compiles the scripts
            browser.go("about:blank")
            started = time.monotonic()
            browser.go(f"{url}#/runs/default/big")
            browser.wait("document.body.dataset.dagSteps === '1000'", 30, "1,000 steps drawn")
            wall = (time.monotonic() - started) * 1000
            render = float(browser.js("document.body.dataset.dagRenderMs"))
            load = float(browser.js("document.body.dataset.runLoadMs"))
            timings.append((render, load, wall))
        print(f"\n1,000-step run: DAG render ms, page load ms (fetch + render), wall ms: {timings}")
        assert browser.js("document.querySelectorAll('svg.dag g.node').length") == 1000
        # Keyboard: the graph is one tab stop; arrows move between steps, Enter shows one.
        browser.js("document.querySelector('svg.dag g.node[tabindex=\"0\"]').focus()")
        first = browser.js("document.activeElement.dataset.step")
        browser.key("ArrowDown")
        down = browser.js("document.activeElement.dataset.step || document.activeElement.tagName")
        browser.key("ArrowRight")
        moved = browser.js("document.activeElement.dataset.step || document.activeElement.tagName")
        print("keyboard:", first, down, moved)
        assert moved and moved != first and moved.startswith("l01-"), (first, moved)
        browser.key("Enter")
        browser.wait(f"document.querySelector('#step-title').textContent.includes({moved!r})", 10)
        browser.screenshot(SHOTS / "large-run.png")
    finally:
        server.shutdown()
        server.server_close()
