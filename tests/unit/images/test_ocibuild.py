"""Unit tests for hack/images/ocibuild.py: the registry-free OCI image builder."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
IMAGES = REPO / "hack" / "images"


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


import kubehatch.imagebuild as ocibuild  # noqa: E402

apt_mirror = _load("apt_mirror", IMAGES / "apt_mirror.py")


# --------------------------------------------------------------------------- helpers


def make_tree(root: Path, files: dict[str, str], mode: int = 0o644) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
    return root


def build(argv: list[str]) -> None:
    assert ocibuild.main(["build", *argv]) == 0


class Layout:
    """An OCI layout tarball read back into memory, checked against the spec as it loads."""

    def __init__(self, path: Path) -> None:
        with tarfile.open(path, "r:") as tar:
            self.names = tar.getnames()
            self.files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        self.index = json.loads(self.files["index.json"])
        entry = self.index["manifests"][0]
        self.manifest = json.loads(self.blob(entry["digest"]))
        self.config = json.loads(self.blob(self.manifest["config"]["digest"]))

    def blob(self, digest: str) -> bytes:
        algo, _, hexd = digest.partition(":")
        return self.files[f"blobs/{algo}/{hexd}"]

    def layer_names(self, i: int) -> list[str]:
        data = self.blob(self.manifest["layers"][i]["digest"])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return tar.getnames()

    def layer_members(self, i: int) -> dict[str, tarfile.TarInfo]:
        data = self.blob(self.manifest["layers"][i]["digest"])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return {m.name: m for m in tar.getmembers()}


def make_wheel(directory: Path) -> Path:
    """A minimal valid wheel (one module, one console script), written by hand."""
    import base64
    import zipfile

    files = {
        "demo_mod.py": "def main():\n    print('demo')\n",
        "demo_pkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n",
        "demo_pkg-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        "demo_pkg-1.0.dist-info/entry_points.txt": "[console_scripts]\ndemo = demo_mod:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append("demo_pkg-1.0.dist-info/RECORD,,")
    files["demo_pkg-1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
    path = directory / "demo_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree", {"b.txt": "bee\n", "a/z.txt": "zed\n", "a/b/c": "see\n"})


# --------------------------------------------------------------------------- tests


def test_layout_is_valid_oci(tmp_path: Path, tree: Path) -> None:
    out = tmp_path / "img.tar"
    build(
        [
            "--layer",
            f"{tree}:/app",
            "--tag",
            "localhost/kubehatch/t:1",
            "-o",
            str(out),
            "--entrypoint",
            '["/app/b.txt"]',
            "--env",
            "A=1",
            "--workdir",
            "/app",
            "--user",
            "1000",
        ]
    )
    lay = Layout(out)

    assert json.loads(lay.files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert lay.index["schemaVersion"] == 2
    assert lay.index["mediaType"] == ocibuild.MEDIA_INDEX
    assert lay.manifest["schemaVersion"] == 2
    assert lay.manifest["mediaType"] == ocibuild.MEDIA_MANIFEST
    assert lay.manifest["config"]["mediaType"] == ocibuild.MEDIA_CONFIG
    # Every blob is stored under its own sha256, with the size its descriptor claims.
    descriptors = [lay.index["manifests"][0], lay.manifest["config"], *lay.manifest["layers"]]
    for d in descriptors:
        data = lay.blob(d["digest"])
        assert "sha256:" + hashlib.sha256(data).hexdigest() == d["digest"]
        assert len(data) == d["size"]
    blob_files = {n for n in lay.files if n.startswith("blobs/")}
    assert blob_files == {f"blobs/sha256/{d['digest'].split(':')[1]}" for d in descriptors}
    assert lay.config["os"] == "linux" and lay.config["architecture"]
    cfg = lay.config["config"]
    assert cfg["Entrypoint"] == ["/app/b.txt"]
    assert cfg["WorkingDir"] == "/app"
    assert cfg["User"] == "1000"
    assert "A=1" in cfg["Env"] and any(e.startswith("PATH=") for e in cfg["Env"])


def test_diff_ids_are_uncompressed_layer_digests(tmp_path: Path, tree: Path) -> None:
    out = tmp_path / "img.tar"
    build(["--layer", str(tree), "--tag", "localhost/kubehatch/t:1", "-o", str(out)])
    lay = Layout(out)
    layers = lay.manifest["layers"]
    assert [layer["mediaType"] for layer in layers] == [ocibuild.MEDIA_LAYER]
    diff_ids = lay.config["rootfs"]["diff_ids"]
    assert lay.config["rootfs"]["type"] == "layers"
    assert diff_ids == ["sha256:" + hashlib.sha256(lay.blob(layers[0]["digest"])).hexdigest()]


def test_index_annotations_and_platform(tmp_path: Path, tree: Path) -> None:
    out = tmp_path / "img.tar"
    build(
        [
            "--layer",
            str(tree),
            "--tag",
            "localhost/kubehatch/pause:3.10",
            "--tag",
            "localhost/kubehatch/pause:stable",
            "-o",
            str(out),
        ]
    )
    lay = Layout(out)
    entries = lay.index["manifests"]
    assert [e["annotations"] for e in entries] == [
        {
            "io.containerd.image.name": "localhost/kubehatch/pause:3.10",
            "org.opencontainers.image.ref.name": "3.10",
        },
        {
            "io.containerd.image.name": "localhost/kubehatch/pause:stable",
            "org.opencontainers.image.ref.name": "stable",
        },
    ]
    assert len({e["digest"] for e in entries}) == 1
    for e in entries:
        assert e["mediaType"] == ocibuild.MEDIA_MANIFEST
        assert e["platform"] == {"os": "linux", "architecture": lay.config["architecture"]}
    assert ocibuild.layout_refs(out) == [
        "localhost/kubehatch/pause:3.10",
        "localhost/kubehatch/pause:stable",
    ]


def test_same_input_same_digests(tmp_path: Path) -> None:
    """Different host paths, creation order and mtimes, same content: same bytes."""
    one = make_tree(tmp_path / "one", {"x/1": "1", "x/2": "2", "y": "y"})
    two = make_tree(tmp_path / "two", {"y": "y", "x/2": "2", "x/1": "1"})
    os.utime(two / "y", (1_000_000, 1_000_000))
    outs = []
    for i, src in enumerate((one, two)):
        out = tmp_path / f"img{i}.tar"
        build(
            [
                "--layer",
                f"{src}:/srv",
                "--env",
                "K=V",
                "--tag",
                "localhost/kubehatch/t:1",
                "-o",
                str(out),
            ]
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_layer_entries_sorted_with_fixed_owner_and_mtime(tmp_path: Path, tree: Path) -> None:
    out = tmp_path / "img.tar"
    build(["--layer", f"{tree}:/opt/app", "--tag", "localhost/kubehatch/t:1", "-o", str(out)])
    lay = Layout(out)
    names = lay.layer_names(0)
    assert names == [
        "opt",
        "opt/app",
        "opt/app/a",
        "opt/app/a/b",
        "opt/app/a/b/c",
        "opt/app/a/z.txt",
        "opt/app/b.txt",
    ]
    for m in lay.layer_members(0).values():
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 0)


def test_source_date_epoch(tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "img.tar"
    build(["--layer", str(tree), "--tag", "localhost/kubehatch/t:1", "-o", str(out)])
    lay = Layout(out)
    assert {m.mtime for m in lay.layer_members(0).values()} == {1700000000}
    assert lay.config["created"] == "2023-11-14T22:13:20Z"


def test_symlinks_hardlinks_and_modes(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"bin/tool": "#!/bin/sh\n"})
    (src / "bin/tool").chmod(0o755)
    (src / "bin/alias").symlink_to("tool")
    os.link(src / "bin/tool", src / "bin/hard")
    out = tmp_path / "img.tar"
    build(["--layer", str(src), "--tag", "localhost/kubehatch/t:1", "-o", str(out)])
    members = Layout(out).layer_members(0)
    assert members["bin/alias"].issym() and members["bin/alias"].linkname == "tool"
    # The first name in sorted order holds the data; the other is a link to it.
    assert members["bin/hard"].isfile() and members["bin/hard"].mode == 0o755
    assert members["bin/tool"].islnk() and members["bin/tool"].linkname == "bin/hard"


def test_layering_keeps_base_layers_and_merges_env(tmp_path: Path, tree: Path) -> None:
    base = tmp_path / "base.tar"
    build(
        [
            "--layer",
            str(tree),
            "--env",
            "A=base",
            "--env",
            "B=keep",
            "--label",
            "dev.kubehatch.python.version=3.11",
            "--cmd",
            '["python3"]',
            "--workdir",
            "/w",
            "--tag",
            "localhost/kubehatch/base:1",
            "-o",
            str(base),
        ]
    )
    top = make_tree(tmp_path / "top", {"app.py": "print(1)\n"})
    out = tmp_path / "app.tar"
    build(
        [
            "--base",
            str(base),
            "--layer",
            f"{top}:/app",
            "--env",
            "A=app",
            "--env",
            "C=new",
            "--tag",
            "localhost/kubehatch/app:1",
            "-o",
            str(out),
        ]
    )
    b, a = Layout(base), Layout(out)

    assert a.manifest["layers"][0] == b.manifest["layers"][0]
    assert len(a.manifest["layers"]) == 2
    assert a.blob(a.manifest["layers"][0]["digest"]) == b.blob(b.manifest["layers"][0]["digest"])
    assert a.config["rootfs"]["diff_ids"][0] == b.config["rootfs"]["diff_ids"][0]
    assert len(a.config["rootfs"]["diff_ids"]) == 2
    env = a.config["config"]["Env"]
    assert env[0].startswith("PATH=")  # base order kept, new keys appended
    assert env[1:] == ["A=app", "B=keep", "C=new"]
    assert a.config["config"]["Cmd"] == ["python3"]
    assert a.config["config"]["WorkingDir"] == "/w"
    assert a.config["config"]["Labels"] == {"dev.kubehatch.python.version": "3.11"}
    assert len(a.config["history"]) == 2
    assert a.layer_names(1) == ["app", "app/app.py"]


def test_entrypoint_resets_inherited_cmd(tmp_path: Path, tree: Path) -> None:
    base = tmp_path / "base.tar"
    build(
        [
            "--layer",
            str(tree),
            "--cmd",
            '["python3"]',
            "--tag",
            "localhost/kubehatch/b:1",
            "-o",
            str(base),
        ]
    )
    out = tmp_path / "out.tar"
    build(
        [
            "--base",
            str(base),
            "--entrypoint",
            '["/bin/run"]',
            "--tag",
            "localhost/kubehatch/o:1",
            "-o",
            str(out),
        ]
    )
    cfg = Layout(out).config["config"]
    assert cfg["Entrypoint"] == ["/bin/run"] and "Cmd" not in cfg
    assert len(Layout(out).manifest["layers"]) == 1  # config-only change adds no layer


@pytest.mark.parametrize(
    ("ref", "full", "tag"),
    [
        ("localhost/kubehatch/pause:3.10", "localhost/kubehatch/pause:3.10", "3.10"),
        ("pause:3.10", "docker.io/library/pause:3.10", "3.10"),
        ("kubehatch/step:v1", "docker.io/kubehatch/step:v1", "v1"),
        ("registry.local:5000/a/b:c", "registry.local:5000/a/b:c", "c"),
    ],
)
def test_normalize_reference(ref: str, full: str, tag: str) -> None:
    assert ocibuild.normalize_reference(ref) == (full, tag)


@pytest.mark.parametrize("ref", ["localhost/kubehatch/pause", "Upper/case:1", "a@sha256:00", "x:"])
def test_bad_references(ref: str) -> None:
    with pytest.raises(ocibuild.BuildError):
        ocibuild.normalize_reference(ref)


def test_errors_are_reported_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = ocibuild.main(
        [
            "build",
            "--layer",
            str(tmp_path / "missing"),
            "--tag",
            "localhost/x/y:1",
            "-o",
            str(tmp_path / "o.tar"),
        ]
    )
    assert rc == 1
    assert "is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "o.tar").exists()


def test_add_python_packages_layer(tmp_path: Path, tree: Path) -> None:
    """pip --target output lands in dist-packages, scripts in /usr/local/bin, reproducibly."""
    base = tmp_path / "base.tar"
    version = "{}.{}".format(*sys.version_info[:2])
    build(
        [
            "--layer",
            str(tree),
            "--label",
            f"dev.kubehatch.python.version={version}",
            "--tag",
            "localhost/kubehatch/base:1",
            "-o",
            str(base),
        ]
    )
    wheel = make_wheel(tmp_path)
    digests = []
    for i in range(2):
        out = tmp_path / f"app{i}.tar"
        assert (
            ocibuild.main(
                [
                    "add-python-packages",
                    "--base",
                    str(base),
                    "--tag",
                    "localhost/kubehatch/app:1",
                    "-o",
                    str(out),
                    "--",
                    "--no-index",
                    "--no-deps",
                    str(wheel),
                ]
            )
            == 0
        )
        lay = Layout(out)
        digests.append(lay.manifest["layers"][-1]["digest"])
    names = lay.layer_names(1)
    site = f"usr/local/lib/python{version}/dist-packages"
    assert f"{site}/demo_mod.py" in names
    assert any(n.startswith(f"{site}/__pycache__/demo_mod.") for n in names)
    script = lay.layer_members(1)["usr/local/bin/demo"]
    assert script.mode == 0o755
    with tarfile.open(fileobj=io.BytesIO(lay.blob(lay.manifest["layers"][1]["digest"]))) as t:
        assert t.extractfile("usr/local/bin/demo").readline() == b"#!/usr/bin/python3\n"
    assert digests[0] == digests[1]


def test_python_version_from_layers(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "root", {"usr/lib/python3.11/os.py": ""})
    base = tmp_path / "base.tar"
    build(["--layer", str(src), "--tag", "localhost/kubehatch/base:1", "-o", str(base)])
    image = ocibuild.load_base(base, ocibuild.host_platform())
    assert ocibuild.image_python_version(base, image) == "3.11"


def test_apt_mirror_reads_deb822_and_one_line(tmp_path: Path) -> None:
    d = tmp_path / "etc/apt/sources.list.d"
    d.mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text("# nothing\n")
    (d / "a.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /k.gpg\n"
    )
    (d / "b.list.disabled").write_text("deb http://other/debian bookworm main\n")
    assert apt_mirror.find_mirror("bookworm", tmp_path) == "http://mirror.example/debian"
    (tmp_path / "etc/apt/sources.list").write_text(
        "deb [arch=amd64] http://one/debian bookworm main\n"
    )
    assert apt_mirror.find_mirror("bookworm", tmp_path) == "http://one/debian"
    assert apt_mirror.find_mirror("trixie", tmp_path) is None
