"""Python packages as an image layer: pip install --target for the image's Python."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

from .blobs import open_blob
from .errors import BuildError
from .image import Image

# The Python base image carries its X.Y here (set by hack/images/build-images.sh).
LABEL_PYTHON_VERSION = "dev.kubehatch.python.version"
_PY_OS_RE = re.compile(r"^(?:\./)?usr/lib/python(3\.\d+)/os\.py$")


def image_python_version(base: Path, image: Image) -> str:
    """The image's Python X.Y: the label set by build-images.sh, else found in the layers."""
    labels = image.config.get("config", {}).get("Labels") or {}
    if labels.get(LABEL_PYTHON_VERSION):
        return str(labels[LABEL_PYTHON_VERSION])
    found: set[str] = set()
    for layer in image.layers:
        src, member = image.blob_sources[layer.digest]
        with open_blob(src, member) as f, tarfile.open(fileobj=f, mode="r|*") as lt:
            for info in lt:
                m = _PY_OS_RE.match(info.name)
                if m:
                    found.add(m.group(1))
    if len(found) != 1:
        raise BuildError(
            f"{base}: cannot tell the image's Python version (found {sorted(found)});"
            f" pass --python-version"
        )
    return found.pop()


def _probe_version(python: str) -> subprocess.CompletedProcess[str]:
    """Run ``python`` to print its X.Y; the caller decides what a failure means."""
    return subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )


def _site_packages(root: Path, python_version: str) -> Path:
    """Where Debian's python3 finds /usr/local packages, under the image tree ``root``."""
    return root / f"usr/local/lib/python{python_version}/dist-packages"


def pip_install_target(
    target: Path,
    pip_args: Sequence[str],
    python_version: str,
    *,
    python: str = sys.executable,
    platform_tag: str = "manylinux_2_36_x86_64",
) -> list[str]:
    """Run ``pip install --target`` for the image's Python; returns the command used.

    When the host Python has the image's X.Y (Debian bookworm: 3.11, like this machine),
    plain pip is used, so pure-Python sdists still work. Otherwise pip is asked for
    wheels of that version and platform only (--only-binary=:all:), which is the only way
    pip can resolve for a different interpreter. ``--no-compile`` keeps the layer
    reproducible (bytecode embeds timestamps); Python compiles on first import instead.
    """
    probe = _probe_version(python)
    if probe.returncode != 0:
        raise BuildError(f"cannot run {python}: {probe.stderr.strip()}")
    cmd = [
        python,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--no-compile",
        "--no-warn-script-location",
        "--no-warn-conflicts",
        "--disable-pip-version-check",
        "--no-input",
    ]
    if probe.stdout.strip() != python_version:
        cmd += [
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--only-binary=:all:",
            "--platform",
            platform_tag,
        ]
    cmd += list(pip_args)
    # pip's root warning is noise here: --target never touches the host's environment.
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}
    result = subprocess.run(cmd, check=False, env=env)
    if result.returncode != 0:
        raise BuildError(f"pip failed ({result.returncode}): {' '.join(cmd)}")
    return cmd


def compile_bytecode(root: Path, python_version: str, python: str = sys.executable) -> bool:
    """Byte-compile the packages under ``root`` if the host Python has the image's X.Y.

    Without .pyc files every container would compile large packages (the kubernetes
    client has hundreds of modules) on each start. ``unchecked-hash`` pycs do not depend
    on source mtimes, which the layer resets, and ``-s/-p`` record image paths rather than
    the staging directory, so the output stays reproducible. Returns False (no pycs) when
    the host Python differs: its bytecode would be the wrong format for the image.
    """
    probe = _probe_version(python)
    if probe.stdout.strip() != python_version:
        return False
    site = _site_packages(root, python_version)
    cmd = [
        python,
        "-m",
        "compileall",
        "-q",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(root),
        "-p",
        "/",
        str(site),
    ]
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        raise BuildError(f"byte-compiling failed ({result.returncode}): {' '.join(cmd)}")
    return True


def relocate_pip_target(target: Path, python_version: str, root: Path) -> None:
    """Arrange ``pip --target`` output as an image tree under ``root``.

    Packages go to /usr/local/lib/pythonX.Y/dist-packages, which Debian's python3 has on
    sys.path by default (no PYTHONPATH needed, and it survives ``python3 -I``); console
    scripts go to /usr/local/bin with their shebang pointed at /usr/bin/python3 instead of
    the host interpreter pip ran under.
    """
    site = _site_packages(root, python_version)
    site.parent.mkdir(parents=True)
    scripts = target / "bin"
    if scripts.is_dir():
        bindir = root / "usr/local/bin"
        bindir.mkdir(parents=True)
        for script in sorted(scripts.iterdir()):
            dest = bindir / script.name
            data = script.read_bytes()
            if data.startswith(b"#!"):
                first, nl, rest = data.partition(b"\n")
                if b"python" in first:
                    data = b"#!/usr/bin/python3" + nl + rest
            dest.write_bytes(data)
            dest.chmod(0o755)
        shutil.rmtree(scripts)
    # direct_url.json records the host path a local wheel was installed from: it would
    # leak the build machine's paths into the image and make the layer path-dependent.
    for direct_url in target.glob("*.dist-info/direct_url.json"):
        direct_url.unlink()
    target.rename(site)
