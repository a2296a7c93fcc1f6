"""What every benchmark needs: a cluster, a namespace, percentiles, a process's memory."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from kubernetes import client

from tests.e2e import kube
from tests.e2e.support import REPO_ROOT

OUT = REPO_ROOT / "_output" / "bench"


def ensure_cluster(crds: bool = True) -> None:
    """$KUBECONFIG's cluster, or the local cluster brought up; kubehatch's CRDs applied
    unless `crds` is false (phases without kubehatch leave the cluster's CRDs alone)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "hack" / "cluster")}
    if not os.environ.get("KUBECONFIG"):
        subprocess.run([sys.executable, "-m", "localcluster", "up"], env=env, check=True)
        path = subprocess.run(
            [sys.executable, "-m", "localcluster", "kubeconfig"], env=env, capture_output=True,
            text=True, check=True,
        ).stdout.strip()  # fmt: skip
        os.environ["KUBECONFIG"] = path
    from kubernetes import config

    # Named explicitly: the client read $KUBECONFIG when it was imported, before it was set.
    config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    if crds:
        kube.apply_crds(REPO_ROOT / "crds")


def namespace(prefix: str = "bench") -> str:
    """A fresh namespace with kubehatch's step ServiceAccount."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    kube.create_step_service_account(name)
    return name


def scrape(port: int) -> dict[str, float]:
    """A Prometheus endpoint's samples by their full name (labels included)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    values: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def serving(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of a list of durations in seconds."""
    if not seconds:
        return {}
    return {
        "n": len(seconds),
        "p50": round(1000 * statistics.median(seconds), 1),
        "p95": round(1000 * percentile(seconds, 0.95), 1),
        "p99": round(1000 * percentile(seconds, 0.99), 1),
        "max": round(1000 * max(seconds), 1),
    }


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (VmRSS), or its peak (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
