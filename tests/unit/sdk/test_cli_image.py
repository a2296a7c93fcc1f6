"""`kubehatch image build` with the built-in builder: code, worker and base in one image."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from kubehatch import imagebuild
from kubehatch.cli import main
from kubehatch.errors import KubehatchError


def _config(image: Path) -> tuple[dict, list[str]]:
    """The image config and every file path in its layers."""
    with tarfile.open(image) as tar:
        index = json.load(tar.extractfile("index.json"))
        manifest_digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{manifest_digest}"))
        config = json.load(
            tar.extractfile(f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}")
        )
        files: list[str] = []
        for layer in manifest["layers"]:
            blob = tar.extractfile(f"blobs/sha256/{layer['digest'].split(':')[1]}")
            with tarfile.open(fileobj=blob) as inner:
                files += inner.getnames()
    return config, files


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "flows.py").write_text("worker = None\n")
    (tmp_path / "shop" / "__pycache__").mkdir()
    (tmp_path / "shop" / "__pycache__" / "x.pyc").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    base_dir = tmp_path / "base-root"
    (base_dir / "etc").mkdir(parents=True)
    (base_dir / "etc" / "base-marker").write_text("base")
    assert (
        imagebuild.main(
            [
                "build",
                "--base",
                "scratch",
                "--layer",
                str(base_dir),
                "--env",
                "KEEP=1",
                "--tag",
                "localhost/t/base:1",
                "-o",
                str(tmp_path / "base.tar"),
            ]
        )
        == 0
    )
    return tmp_path


def test_builtin_build_layers_the_package_and_names_the_worker(project: Path) -> None:
    out = project / "out.tar"
    argv = [
        "image",
        "build",
        "shop.flows:worker",
        "-t",
        "localhost/t/shop:1",
        "--builder",
        "builtin",
        "--base",
        str(project / "base.tar"),
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    config, files = _config(out)
    env = config["config"]["Env"]
    assert "KUBEHATCH_WORKER=shop.flows:worker" in env and "KEEP=1" in env
    assert config["config"]["WorkingDir"] == "/app"
    assert "app/shop/flows.py" in files and "etc/base-marker" in files
    assert not any("__pycache__" in f for f in files)


def test_missing_base_says_how_to_get_one(project: Path) -> None:
    argv = [
        "image",
        "build",
        "shop.flows:worker",
        "-t",
        "x:1",
        "--builder",
        "builtin",
        "--base",
        str(project / "nope.tar"),
    ]
    assert main(argv) == 1


def test_unknown_module_is_reported(project: Path) -> None:
    from kubehatch.cli.image import _code_path

    with pytest.raises(KubehatchError, match="cannot find module 'nowhere'"):
        _code_path("nowhere.flows:worker")
