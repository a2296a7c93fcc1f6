"""Importing image tarballs into containerd with ctr, and checking the names arrived."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

from .errors import BuildError
from .layout import read_json_member
from .oci import ANNOTATION_CONTAINERD_NAME, host_platform


def layout_refs(path: Path) -> list[str]:
    """The image names an OCI layout tarball will import as."""
    with tarfile.open(path, "r:") as tar:
        index = read_json_member(tar, "index.json")
    return [
        m.get("annotations", {}).get(ANNOTATION_CONTAINERD_NAME, "")
        for m in index.get("manifests", [])
    ]


def ctr_import(paths: Sequence[Path], address: str, namespace: str, ctr: str = "ctr") -> list[str]:
    """Import tarballs with ``ctr images import`` and check each name is then listed.

    ``ctr`` (containerd 1.6) names OCI images by the ``io.containerd.image.name``
    annotation and unpacks them for the default snapshotter, so the first container
    start does not pay for it. Importing into the ``k8s.io`` namespace is what makes
    the CRI plugin, and so the kubelet with imagePullPolicy IfNotPresent, see them.
    """
    if shutil.which(ctr) is None:
        raise BuildError(f"{ctr} not found: apt-get install -y containerd")
    if not Path(address).exists():
        raise BuildError(f"containerd socket {address} does not exist: is containerd running?")
    base = [ctr, "--address", address, "--namespace", namespace]
    imported: list[str] = []
    for path in paths:
        refs = layout_refs(path)
        if not all(refs):
            raise BuildError(f"{path}: an index entry has no {ANNOTATION_CONTAINERD_NAME}")
        result = subprocess.run(
            [*base, "images", "import", "--platform", "/".join(host_platform()), str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BuildError(f"ctr images import {path} failed: {result.stderr.strip()}")
        imported += refs
    listed = subprocess.run(
        [*base, "images", "list", "--quiet"], capture_output=True, text=True, check=False
    )
    missing = sorted(set(imported) - set(listed.stdout.split()))
    if missing:
        raise BuildError(f"imported but not listed by containerd: {', '.join(missing)}")
    return imported
