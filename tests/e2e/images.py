"""The images e2e tests run: kubehatch's step image plus the e2e workers, built here.

On the local cluster they are built with the registry-free builder and imported into
its containerd; on another cluster (kind) they must already be loaded (`make kind-up`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.e2e.support import REPO_ROOT

IMAGES = REPO_ROOT / "hack" / "images"
E2E_WORKER = "tests.e2e.workers.dags:worker"
LOCAL_CONTAINERD = Path("/run/kubehatch-cluster/containerd/containerd.sock")


def _images_env() -> dict[str, str]:
    """What the last build wrote (not recomputed: sources may change while tests run)."""
    cache = Path(os.environ.get("KUBEHATCH_CACHE", Path.home() / ".cache" / "kubehatch"))
    text = (cache / "images" / "images.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _load(tarball: Path) -> None:
    if LOCAL_CONTAINERD.exists():
        subprocess.run(
            ["python3", str(IMAGES / "ocibuild.py"), "load", "--address", str(LOCAL_CONTAINERD),
             str(tarball)],
            check=True, capture_output=True,
        )  # fmt: skip


def kubehatch_images() -> dict[str, str]:
    """Build (cached) and load the operator and step images; their references and tarballs."""
    env = {**os.environ, "CONTAINERD_ADDRESS": str(LOCAL_CONTAINERD)}
    mode = ["load", "kubehatch"] if LOCAL_CONTAINERD.exists() else ["kubehatch"]
    subprocess.run(["bash", str(IMAGES / "build-images.sh"), *mode], check=True, env=env)
    return _images_env()


def e2e_image() -> str:
    """The step image with tests/e2e/workers in /app, tagged by its content."""
    return _e2e_image()[0]


def fixed_image(marker: str) -> str:
    """The e2e image plus one file, /app/fixes/<marker>: a "new release" of the step code
    for tests that fix a step by a new image."""
    base_ref, base_tar = _e2e_image()
    tag = f"{base_ref.rpartition(':')[2]}-{marker}"
    ref = f"localhost/kubehatch/e2e-fixed:{tag}"
    out = base_tar.parent / f"e2e-fixed-{tag}.tar"
    if not out.exists():
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / marker).write_text("fixed\n")
            subprocess.run(
                ["python3", str(IMAGES / "ocibuild.py"), "build", "--base", str(base_tar),
                 "--layer", f"{tmp}:/app/fixes", "--tag", ref, "-o", str(out)],
                check=True, capture_output=True,
            )  # fmt: skip
    _load(out)
    return ref


def _e2e_image() -> tuple[str, Path]:
    images = kubehatch_images()
    step_tar = Path(images["KUBEHATCH_STEP_TAR"])
    workers = REPO_ROOT / "tests" / "e2e" / "workers"
    files = sorted(p for p in workers.glob("*.py"))
    digest = hashlib.sha256(step_tar.name.encode())
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    ref = f"localhost/kubehatch/e2e:{digest.hexdigest()[:12]}"
    out = Path(images["KUBEHATCH_STEP_TAR"]).parent / f"e2e-{digest.hexdigest()[:12]}.tar"
    if not out.exists():
        with tempfile.TemporaryDirectory() as tmp:
            app = Path(tmp) / "app"
            (app / "tests" / "e2e" / "workers").mkdir(parents=True)
            for package in (app / "tests", app / "tests" / "e2e"):
                (package / "__init__.py").write_text("")
            for path in files:
                shutil.copy(path, app / "tests" / "e2e" / "workers" / path.name)
            subprocess.run(
                ["python3", str(IMAGES / "ocibuild.py"), "build", "--base", str(step_tar),
                 "--layer", f"{app}:/app", "--env", f"KUBEHATCH_WORKER={E2E_WORKER}",
                 "--tag", ref, "-o", str(out)],
                check=True, capture_output=True,
            )  # fmt: skip
    _load(out)
    return ref, out
