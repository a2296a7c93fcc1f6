"""What the cluster needs from the machine, and installing what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .layout import HACK_DIR, Layout
from .processes import ClusterError

# command -> Debian package that provides it
DEBIAN_PACKAGES = {
    "containerd": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "nsenter": "util-linux",
    "openssl": "openssl",
    "ip": "iproute2",
    "debootstrap": "debootstrap",
    "gcc": "gcc",
}
CNI_DIR = Path("/usr/lib/cni")


def ensure_packages() -> None:
    """apt-get install the Debian packages of whatever command is missing."""
    missing = sorted({pkg for cmd, pkg in DEBIAN_PACKAGES.items() if not shutil.which(cmd)})
    if not (CNI_DIR / "bridge").exists():
        missing.append("containernetworking-plugins")
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"missing packages {missing}: run as root, or apt-get install them.")
    print(f"installing Debian packages: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise ClusterError(
                f"`{' '.join(argv)}` failed (exit {result.returncode}). Fix apt and retry:\n"
                + result.stderr[-2000:]
            )


def ensure_binaries(layout: Layout) -> None:
    """Build the pinned components into the cache unless they are there already."""
    if not shutil.which("go"):
        raise ClusterError(
            "no Go toolchain on PATH: Kubernetes and etcd are built from their Go modules. "
            "Install Go 1.24 or newer and retry."
        )
    for target in ("etcd", "kubernetes"):
        subprocess.run(
            ["bash", str(HACK_DIR / "cluster" / "build-binaries.sh"), target], check=True
        )
    if not layout.etcd_bin.exists() or not (layout.kubernetes_bin / "kubelet").exists():
        raise ClusterError(f"the build left no binaries in {layout.cache / 'bin'}")


def ensure_images(layout: Layout) -> None:
    """Build the pause and Python base images (cached) and import them into containerd."""
    script = HACK_DIR / "images" / "build-images.sh"
    env = {**os.environ, "CONTAINERD_ADDRESS": str(layout.containerd_socket)}
    subprocess.run(["bash", str(script), "load"], check=True, env=env)
