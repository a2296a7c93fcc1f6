"""Fixtures for end-to-end tests: a real cluster, and a fresh namespace per test.

The session uses the cluster at $KUBECONFIG when one is set and answers; otherwise it
brings up the local cluster from hack/cluster (and leaves it up for the next session:
`make cluster-down` stops it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "hack" / "cluster")}


def _reachable(kubeconfig: str) -> bool:
    try:
        config.load_kube_config(config_file=kubeconfig)
        client.VersionApi().get_code(_request_timeout=5)
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """Path of a kubeconfig for a reachable cluster; also loaded into the kubernetes client."""
    given = os.environ.get("KUBECONFIG")
    if given and _reachable(given):
        return given
    up = subprocess.run(
        [sys.executable, "-m", "localcluster", "up"], env=CLUSTER_ENV, cwd=REPO_ROOT
    )
    if up.returncode != 0:
        pytest.fail("could not bring up the local cluster (see the output above)")
    path = subprocess.run(
        [sys.executable, "-m", "localcluster", "kubeconfig"],
        env=CLUSTER_ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert _reachable(path), f"the local cluster at {path} does not answer"
    os.environ["KUBECONFIG"] = path
    return path


@pytest.fixture
def namespace(kubeconfig: str) -> Iterator[str]:
    """A namespace of its own for one test, deleted afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


# --- kubehatch on the cluster --------------------------------------------------------------

OPERATOR_NAMESPACES = "e2e-op-*"


@pytest.fixture(scope="session")
def crds(kubeconfig: str) -> None:
    """The generated CRDs, applied (created or replaced) and Established."""
    from tests.e2e.kube import apply_crds

    apply_crds(REPO_ROOT / "crds")


@pytest.fixture(scope="session")
def step_image(kubeconfig: str) -> str:
    from tests.e2e.images import e2e_image

    return e2e_image()


@pytest.fixture(scope="session")
def operator(crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The operator, in a process of its own, watching the e2e-op-* namespaces."""
    from tests.e2e.operator_process import OperatorProcess

    proc = OperatorProcess(
        OPERATOR_NAMESPACES, tmp_path_factory.mktemp("operator") / "operator.log"
    )
    proc.start()
    yield proc
    proc.stop()
    print("operator log (tail):\n" + proc.log_tail())


@pytest.fixture
def op_namespace(kubeconfig: str) -> Iterator[str]:
    """A namespace the test operator watches, with the step ServiceAccount in it."""
    from tests.e2e.kube import create_step_service_account

    name = f"e2e-op-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    create_step_service_account(name)
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
