"""Where everything lives: versions, cache, state, addresses. One place, read by all modules."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HACK_DIR = Path(__file__).resolve().parents[2]
REPO_ROOT = HACK_DIR.parent


def read_versions(path: Path = HACK_DIR / "versions.env") -> dict[str, str]:
    """Parse hack/versions.env, the single place where versions are pinned."""
    versions: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


@dataclass(frozen=True)
class Network:
    """Addresses of the node's network namespace. None of them routes off the machine."""

    netns: str = "kubehatch-node"
    host_veth: str = "kh-host0"
    node_veth: str = "kh-node0"
    host_ip: str = "10.201.0.1"
    node_ip: str = "10.201.0.2"
    prefix: int = 30
    pod_cidr: str = "10.202.0.0/16"
    service_cidr: str = "10.203.0.0/16"
    # The first address of the service range: the `kubernetes` Service's ClusterIP.
    kubernetes_service_ip: str = "10.203.0.1"
    apiserver_port: int = 6443


@dataclass(frozen=True)
class Layout:
    versions: dict[str, str]
    cache: Path
    state: Path
    network: Network
    node_name: str = "kubehatch-node"

    @classmethod
    def from_env(cls) -> Layout:
        cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        cache = Path(os.environ.get("KUBEHATCH_CACHE", cache_home / "kubehatch"))
        state = Path(os.environ.get("KUBEHATCH_CLUSTER_DIR", "/var/lib/kubehatch-cluster"))
        return cls(versions=read_versions(), cache=cache, state=state, network=Network())

    # Binaries, built by hack/cluster/build-binaries.sh and keyed by version.
    @property
    def kubernetes_bin(self) -> Path:
        return self.cache / "bin" / f"kubernetes-{self.versions['KUBERNETES_VERSION']}"

    @property
    def etcd_bin(self) -> Path:
        return self.cache / "bin" / f"etcd-{self.versions['ETCD_VERSION']}" / "etcd"

    @property
    def images(self) -> Path:
        return self.cache / "images"

    # Cluster state: wiped by `make cluster-reset`, never by a rebuild.
    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def config(self) -> Path:
        return self.state / "config"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig: the fixed path printed by `make cluster-up`."""
        return self.state / "kubeconfig"

    @property
    def run_dir(self) -> Path:
        """Sockets and runtime state (containerd's state dir must be on a non-overlay fs)."""
        return Path("/run/kubehatch-cluster")

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd" / "containerd.sock"

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.network.node_ip}:{self.network.apiserver_port}"
