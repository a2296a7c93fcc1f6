#!/usr/bin/env python3
"""Build OCI image layout tarballs without Docker, a registry or any third-party package.

This machine has no container engine and no registry, so the images the local cluster
needs (the pause image, the Python base image, step and operator images) are written
directly as OCI image layout tarballs and imported into containerd with ``ctr``.

Subcommands:

``build``
    Write an image: an optional base image tarball (or ``scratch``), directories added as
    new layers on top, and config changes (env, workdir, entrypoint, cmd, user, labels).
``add-python-packages``
    Add one layer holding ``pip install --target`` output for the base image's Python
    (how kubehatch's wheel and its dependencies go into step and operator images).
``inspect``
    Print the index, manifest and config of an image tarball (for humans and tests).
``load``
    Import image tarballs into containerd (namespace ``k8s.io`` by default, where the
    CRI plugin, and so the kubelet, looks for images) and check the names arrived.

Design choices, and why:

* Layers are uncompressed tars, so a layer's digest equals its diff_id: no gzip
  nondeterminism, and nothing to gain from compression on a local import.
* Layers are deterministic: entries sorted by path, mtimes fixed (``SOURCE_DATE_EPOCH``,
  default 0), owner 0:0 unless ``--preserve-ownership``, no user/group names, no xattrs.
  The same input therefore gives the same digests, which keeps rebuilds and caches honest.
* Image references are normalised the way the CRI plugin normalises a pod's ``image:``
  (``pause:1`` -> ``docker.io/library/pause:1``), so the name containerd stores is the name
  the kubelet asks for. The project's convention is ``localhost/kubehatch/<name>:<tag>``.
* The index entry for each reference carries ``io.containerd.image.name`` (the full
  reference, which ``ctr images import`` uses as the image name) and
  ``org.opencontainers.image.ref.name`` (the tag, per the OCI image layout spec).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
LABEL_PYTHON_VERSION = "dev.kubehatch.python.version"

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHUNK = 1 << 20


class BuildError(Exception):
    """A user-facing error: printed without a traceback."""


def source_date_epoch() -> int:
    """The fixed mtime for every layer and layout entry (reproducible-builds convention)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        return int(value)
    except ValueError as exc:
        raise BuildError(f"SOURCE_DATE_EPOCH must be an integer, got {value!r}") from exc


def host_platform() -> tuple[str, str]:
    """The (os, architecture) pair for new images, in OCI/Go spelling."""
    machine = os.uname().machine
    arch = {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)
    return "linux", arch


# --------------------------------------------------------------------------- references

_DOMAIN_RE = re.compile(r"^(localhost|[^/]*[.:][^/]*)$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_PATH_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


def normalize_reference(ref: str) -> tuple[str, str]:
    """Return (full reference, tag) the way containerd's CRI plugin normalises pod images.

    A pod saying ``image: localhost/kubehatch/pause:3.10`` is looked up under exactly that
    name, while ``image: pause:3.10`` is looked up as ``docker.io/library/pause:3.10``; the
    imported name must match, so references are normalised here rather than by hand.
    Digest references are refused: a tag is what ties the pod spec to the import.
    """
    if "@" in ref:
        raise BuildError(f"{ref!r}: digest references cannot be used as image names")
    name, tag = ref, ""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
    if not tag:
        raise BuildError(f"{ref!r}: give an explicit tag (not latest) so IfNotPresent finds it")
    if not _TAG_RE.match(tag):
        raise BuildError(f"{ref!r}: invalid tag {tag!r}")
    first, _, rest = name.partition("/")
    if rest and _DOMAIN_RE.match(first):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if not _PATH_RE.match(path):
        raise BuildError(f"{ref!r}: invalid repository path {path!r} (lower case, digits, . _ -)")
    return f"{domain}/{path}:{tag}", tag


# --------------------------------------------------------------------------- blobs


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def canonical_json(obj: Any) -> bytes:
    """Serialise JSON with sorted keys and no whitespace, so equal objects hash equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what passes through to the real file."""

    def __init__(self, out: IO[bytes]) -> None:
        super().__init__()
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._out.write(view)
        self.hash.update(view)
        self.size += len(view)
        return len(view)


# --------------------------------------------------------------------------- layers


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """A host directory whose contents appear under ``dest`` in the image."""

    src: Path
    dest: str = "/"

    @classmethod
    def parse(cls, text: str) -> LayerSpec:
        """Parse ``DIR[:DEST]`` (DEST is an absolute path inside the image)."""
        src, sep, dest = text.partition(":")
        if not sep:
            dest = "/"
        if not dest.startswith("/"):
            raise BuildError(f"--layer {text!r}: DEST must be an absolute path")
        path = Path(src)
        if not path.is_dir():
            raise BuildError(f"--layer {text!r}: {src} is not a directory")
        return cls(path, dest)


def _clean_dest(dest: str) -> str:
    """'/usr/local/' -> 'usr/local'; '/' -> ''. Refuses '..' so nothing escapes the root."""
    parts = [p for p in dest.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BuildError(f"destination {dest!r} must not contain '..'")
    return "/".join(parts)


def _walk_sorted(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield (relative posix path, host path) for everything under root, sorted by path.

    Sorting by full path string (rather than os.walk order) makes the tar independent of
    the file system's directory order.
    """
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames + filenames:
            path = base / name
            entries.append((path.relative_to(root).as_posix(), path))
    entries.sort(key=lambda e: e[0].encode("utf-8", "surrogateescape"))
    yield from entries


@dataclasses.dataclass
class LayerStats:
    """What went into a layer, so callers can report what was skipped."""

    entries: int = 0
    skipped_special: list[str] = dataclasses.field(default_factory=list)


def write_layer(
    specs: Sequence[LayerSpec],
    out: IO[bytes],
    *,
    mtime: int,
    preserve_ownership: bool = False,
    preserve_mtimes: bool = False,
) -> LayerStats:
    """Write one deterministic layer tar holding every spec's directory at its destination.

    Parent directories of each destination are emitted explicitly (0755, root) so the
    layer applies cleanly on scratch. Hard links within the layer are kept as hard links.
    Device nodes, fifos and sockets are skipped: the runtime provides /dev, and they are
    never part of what this project puts in images.

    ``preserve_mtimes`` is for root filesystems holding timestamp-checked bytecode (Debian
    compiles .pyc files at install time): resetting their sources' mtimes would make
    Python ignore every .pyc and recompile the standard library in each container.
    """
    stats = LayerStats()
    seen_dirs: set[str] = set()
    hardlinks: dict[tuple[int, int], str] = {}

    def base_info(name: str, st: os.stat_result | None) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mtime = mtime
        info.uname = info.gname = ""
        if st is not None and preserve_ownership:
            info.uid, info.gid = st.st_uid, st.st_gid
        else:
            info.uid = info.gid = 0
        if st is not None and preserve_mtimes:
            info.mtime = int(st.st_mtime)
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for spec in specs:
            prefix = _clean_dest(spec.dest)
            parents = prefix.split("/") if prefix else []
            for i in range(1, len(parents) + 1):
                d = "/".join(parents[:i])
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    info = base_info(d, None)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    stats.entries += 1
            for rel, path in _walk_sorted(spec.src):
                name = f"{prefix}/{rel}" if prefix else rel
                st = path.lstat()
                info = base_info(name, st)
                info.mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISDIR(st.st_mode):
                    if name in seen_dirs:
                        continue
                    seen_dirs.add(name)
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif stat.S_ISLNK(st.st_mode):
                    info.type = tarfile.SYMTYPE
                    info.linkname = os.readlink(path)
                    tar.addfile(info)
                elif stat.S_ISREG(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in hardlinks:
                        info.type = tarfile.LNKTYPE
                        info.linkname = hardlinks[key]
                        tar.addfile(info)
                    else:
                        if st.st_nlink > 1:
                            hardlinks[key] = name
                        info.type = tarfile.REGTYPE
                        info.size = st.st_size
                        with path.open("rb") as f:
                            tar.addfile(info, f)
                else:
                    stats.skipped_special.append(name)
                    continue
                stats.entries += 1
    return stats


# --------------------------------------------------------------------------- images


@dataclasses.dataclass
class Image:
    """An image being assembled: its config and its layer blobs (descriptor -> source)."""

    config: dict[str, Any]
    layers: list[Descriptor]
    # digest -> (tarball path, member name) for blobs copied from a base image,
    # or digest -> (temp file path, None) for new layers.
    blob_sources: dict[str, tuple[Path, str | None]]


def _read_json_member(tar: tarfile.TarFile, name: str) -> Any:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise BuildError(f"{tar.name}: no {name} (is it an OCI image layout tarball?)")
    return json.load(f)


def _blob_name(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return f"blobs/{algo}/{hexd}"


def select_manifest(
    index: dict[str, Any], platform: tuple[str, str], source: str
) -> dict[str, Any]:
    """Pick the manifest for this platform from an index (a single entry is taken as is)."""
    manifests = [
        m
        for m in index.get("manifests", [])
        if m.get("mediaType") in (MEDIA_MANIFEST, DOCKER_MANIFEST, None)
    ]
    if not manifests:
        raise BuildError(f"{source}: index.json lists no image manifest")
    digests = {m["digest"] for m in manifests}
    if len(digests) == 1:
        return manifests[0]
    os_, arch = platform
    for m in manifests:
        p = m.get("platform", {})
        if p.get("os") == os_ and p.get("architecture") == arch:
            return m
    raise BuildError(f"{source}: no manifest for {os_}/{arch}")


def load_base(path: Path, platform: tuple[str, str]) -> Image:
    """Read a base image's config and layer list from an OCI layout tarball.

    The base's layer blobs are not extracted: they are streamed from the base tarball into
    the new one, so layering on a large base costs one copy and no re-hashing.
    """
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise BuildError(f"cannot read base image {path}: {exc}") from exc
    with tar:
        index = _read_json_member(tar, "index.json")
        entry = select_manifest(index, platform, str(path))
        manifest = _read_json_member(tar, _blob_name(entry["digest"]))
        config = _read_json_member(tar, _blob_name(manifest["config"]["digest"]))
        names = set(tar.getnames())
    layers = []
    sources: dict[str, tuple[Path, str | None]] = {}
    for layer in manifest["layers"]:
        media = layer["mediaType"]
        if media == DOCKER_LAYER:
            media = MEDIA_LAYER
        elif media == DOCKER_LAYER_GZIP:
            media = MEDIA_LAYER_GZIP
        if media not in (MEDIA_LAYER, MEDIA_LAYER_GZIP):
            raise BuildError(f"{path}: unsupported layer media type {layer['mediaType']}")
        member = _blob_name(layer["digest"])
        if member not in names:
            raise BuildError(f"{path}: missing layer blob {member}")
        layers.append(Descriptor(media, layer["digest"], layer["size"]))
        sources[layer["digest"]] = (path, member)
    if len(config.get("rootfs", {}).get("diff_ids", [])) != len(layers):
        raise BuildError(f"{path}: config diff_ids do not match the manifest's layers")
    return Image(config=config, layers=layers, blob_sources=sources)


def scratch_image(platform: tuple[str, str]) -> Image:
    """An empty image: no layers, a default PATH like Docker's scratch builds get."""
    os_, arch = platform
    config = {
        "architecture": arch,
        "os": os_,
        "config": {"Env": [DEFAULT_PATH]},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    return Image(config=config, layers=[], blob_sources={})


def merge_env(base: Iterable[str], updates: Iterable[str]) -> list[str]:
    """Docker-style env merge: a new K=V replaces the base's K in place, new keys append."""
    merged: dict[str, str] = {}
    for item in list(base) + list(updates):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BuildError(f"environment entry {item!r} is not KEY=VALUE")
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def _json_list(text: str, flag: str) -> list[str]:
    """Parse a JSON array of strings; a plain string becomes ``["/bin/sh", "-c", text]``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return ["/bin/sh", "-c", text]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BuildError(f"{flag} must be a JSON array of strings, got {text!r}")
    return value


@dataclasses.dataclass
class ConfigChanges:
    """Config edits applied on top of the base image's config."""

    env: list[str] = dataclasses.field(default_factory=list)
    workdir: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


def apply_changes(config: dict[str, Any], changes: ConfigChanges) -> None:
    """Edit an image config in place.

    Like Dockerfile ENTRYPOINT, setting an entrypoint clears an inherited Cmd (which was
    meant as arguments for the old entrypoint) unless a Cmd is given too.
    """
    cfg = config.setdefault("config", {})
    if changes.env:
        cfg["Env"] = merge_env(cfg.get("Env") or [], changes.env)
    if changes.workdir is not None:
        if not changes.workdir.startswith("/"):
            raise BuildError("--workdir must be an absolute path")
        cfg["WorkingDir"] = changes.workdir
    if changes.entrypoint is not None:
        cfg["Entrypoint"] = changes.entrypoint
        if changes.cmd is None:
            cfg.pop("Cmd", None)
    if changes.cmd is not None:
        cfg["Cmd"] = changes.cmd
    if changes.user is not None:
        cfg["User"] = changes.user
    if changes.labels:
        labels = dict(cfg.get("Labels") or {})
        labels.update(changes.labels)
        cfg["Labels"] = labels


def add_layer(
    image: Image,
    specs: Sequence[LayerSpec],
    workdir: Path,
    *,
    comment: str,
    preserve_ownership: bool = False,
    preserve_mtimes: bool = False,
) -> LayerStats:
    """Write a new layer from host directories and append it to the image."""
    mtime = source_date_epoch()
    fd, tmp = tempfile.mkstemp(prefix="layer-", suffix=".tar", dir=workdir)
    with os.fdopen(fd, "wb") as raw:
        hw = _HashingWriter(raw)
        stats = write_layer(
            specs,
            hw,
            mtime=mtime,
            preserve_ownership=preserve_ownership,
            preserve_mtimes=preserve_mtimes,
        )
    digest = "sha256:" + hw.hash.hexdigest()
    image.layers.append(Descriptor(MEDIA_LAYER, digest, hw.size))
    image.blob_sources[digest] = (Path(tmp), None)
    image.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    image.config["rootfs"].setdefault("diff_ids", []).append(digest)
    image.config.setdefault("history", []).append({"created": _iso(mtime), "created_by": comment})
    return stats


def _iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_layout(
    image: Image, refs: Sequence[str], output: Path, platform: tuple[str, str]
) -> dict[str, Any]:
    """Write the OCI layout tarball: oci-layout, index.json and every blob, sorted.

    One index entry per reference, all pointing at the same manifest, so one import can
    give the image a moving tag and an exact one. Written to a temporary name and renamed,
    so an interrupted build never leaves a truncated tarball where the cache expects one.
    """
    if not refs:
        raise BuildError("give at least one --tag")
    mtime = source_date_epoch()
    image.config["created"] = _iso(mtime)
    os_, arch = platform
    image.config.setdefault("os", os_)
    image.config.setdefault("architecture", arch)
    config_bytes = canonical_json(image.config)
    config_desc = Descriptor(MEDIA_CONFIG, sha256_digest(config_bytes), len(config_bytes))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [layer.to_json() for layer in image.layers],
    }
    manifest_bytes = canonical_json(manifest)
    manifest_digest = sha256_digest(manifest_bytes)
    entries = []
    for ref in refs:
        full, tag = normalize_reference(ref)
        entries.append(
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": {
                    "architecture": image.config["architecture"],
                    "os": image.config["os"],
                },
                "annotations": {ANNOTATION_CONTAINERD_NAME: full, ANNOTATION_REF_NAME: tag},
            }
        )
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}
    small_blobs = {
        config_desc.digest: config_bytes,
        manifest_digest: manifest_bytes,
    }

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:

            def add_bytes(name: str, data: bytes) -> None:
                info = _file_info(name, len(data), mtime)
                tar.addfile(info, io.BytesIO(data))

            def add_dir(name: str) -> None:
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                info.uname = info.gname = ""
                tar.addfile(info)

            add_dir("blobs")
            add_dir("blobs/sha256")
            blob_digests = sorted(set(small_blobs) | {layer.digest for layer in image.layers})
            for digest in blob_digests:
                name = _blob_name(digest)
                if digest in small_blobs:
                    add_bytes(name, small_blobs[digest])
                    continue
                size = next(layer.size for layer in image.layers if layer.digest == digest)
                src, member = image.blob_sources[digest]
                with _open_blob(src, member) as f:
                    tar.addfile(_file_info(name, size, mtime), f)
            add_bytes("index.json", canonical_json(index))
            add_bytes("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        os.replace(tmp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return index


def _file_info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, mtime
    info.uname = info.gname = ""
    return info


@contextlib.contextmanager
def _open_blob(src: Path, member: str | None) -> Iterator[IO[bytes]]:
    if member is None:
        with src.open("rb") as f:
            yield f
        return
    with tarfile.open(src, "r:") as tar:
        f = tar.extractfile(member)
        if f is None:
            raise BuildError(f"{src}: {member} is not a file")
        yield f


# --------------------------------------------------------------------------- python packages

_PY_OS_RE = re.compile(r"^(?:\./)?usr/lib/python(3\.\d+)/os\.py$")


def image_python_version(base: Path, image: Image) -> str:
    """The image's Python X.Y: the label set by build-images.sh, else found in the layers."""
    labels = image.config.get("config", {}).get("Labels") or {}
    if labels.get(LABEL_PYTHON_VERSION):
        return str(labels[LABEL_PYTHON_VERSION])
    found: set[str] = set()
    for layer in image.layers:
        src, member = image.blob_sources[layer.digest]
        with _open_blob(src, member) as f, tarfile.open(fileobj=f, mode="r|*") as lt:
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
    probe = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
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
    probe = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.stdout.strip() != python_version:
        return False
    site = root / f"usr/local/lib/python{python_version}/dist-packages"
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
    site = root / f"usr/local/lib/python{python_version}/dist-packages"
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


# --------------------------------------------------------------------------- ctr import


def layout_refs(path: Path) -> list[str]:
    """The image names an OCI layout tarball will import as."""
    with tarfile.open(path, "r:") as tar:
        index = _read_json_member(tar, "index.json")
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


# --------------------------------------------------------------------------- CLI


def _parse_kv(items: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BuildError(f"{flag} {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def _changes_from_args(args: argparse.Namespace) -> ConfigChanges:
    return ConfigChanges(
        env=list(args.env),
        workdir=args.workdir,
        entrypoint=_json_list(args.entrypoint, "--entrypoint") if args.entrypoint else None,
        cmd=_json_list(args.cmd, "--cmd") if args.cmd else None,
        user=args.user,
        labels=_parse_kv(args.label, "--label"),
    )


def _start_image(base: str) -> Image:
    platform = host_platform()
    return scratch_image(platform) if base == "scratch" else load_base(Path(base), platform)


def cmd_build(args: argparse.Namespace) -> int:
    image = _start_image(args.base)
    specs = [LayerSpec.parse(s) for s in args.layer]
    with tempfile.TemporaryDirectory(prefix="ocibuild-", dir=args.tmpdir) as work:
        if specs:
            stats = add_layer(
                image,
                specs,
                Path(work),
                preserve_ownership=args.preserve_ownership,
                preserve_mtimes=args.preserve_mtimes,
                comment="ocibuild build: layer at " + ", ".join(s.dest for s in specs),
            )
            if stats.skipped_special:
                print(
                    f"ocibuild: skipped {len(stats.skipped_special)} device/fifo/socket"
                    f" entries (e.g. {stats.skipped_special[0]})",
                    file=sys.stderr,
                )
        apply_changes(image.config, _changes_from_args(args))
        index = write_layout(image, args.tag, Path(args.output), host_platform())
    _report(index, args.output)
    return 0


def cmd_add_python_packages(args: argparse.Namespace) -> int:
    image = load_base(Path(args.base), host_platform())
    version = args.python_version or image_python_version(Path(args.base), image)
    if not args.pip_args:
        raise BuildError(
            "give what to install after --, e.g. -- dist/kubehatch-0.1.0-py3-none-any.whl"
        )
    with tempfile.TemporaryDirectory(prefix="ocibuild-", dir=args.tmpdir) as work:
        target = Path(work) / "target"
        root = Path(work) / "root"
        root.mkdir()
        pip_install_target(target, args.pip_args, version, python=args.python)
        relocate_pip_target(target, version, root)
        if not args.no_compile:
            compile_bytecode(root, version, python=args.python)
        add_layer(
            image,
            [LayerSpec(root, "/")],
            Path(work),
            comment="ocibuild add-python-packages " + " ".join(args.pip_args),
        )
        apply_changes(image.config, _changes_from_args(args))
        index = write_layout(image, args.tag, Path(args.output), host_platform())
    _report(index, args.output)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.image)
    with tarfile.open(path, "r:") as tar:
        index = _read_json_member(tar, "index.json")
        entry = select_manifest(index, host_platform(), str(path))
        manifest = _read_json_member(tar, _blob_name(entry["digest"]))
        config = _read_json_member(tar, _blob_name(manifest["config"]["digest"]))
    json.dump({"index": index, "manifest": manifest, "config": config}, sys.stdout, indent=2)
    print()
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    for ref in ctr_import([Path(p) for p in args.images], args.address, args.namespace, args.ctr):
        print(f"loaded {ref}")
    return 0


def _report(index: dict[str, Any], output: str) -> None:
    digest = index["manifests"][0]["digest"]
    names = ", ".join(m["annotations"][ANNOTATION_CONTAINERD_NAME] for m in index["manifests"])
    print(f"wrote {output}: {names} (manifest {digest})")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tag",
        "-t",
        action="append",
        required=True,
        help="image reference, e.g. localhost/kubehatch/pause:3.10 (repeatable)",
    )
    p.add_argument("-o", "--output", required=True, help="OCI layout tarball to write")
    p.add_argument(
        "--env",
        "-e",
        action="append",
        default=[],
        metavar="K=V",
        help="set an environment variable (merged over the base's)",
    )
    p.add_argument("--workdir", help="working directory")
    p.add_argument("--entrypoint", help="JSON array, e.g. '[\"/pause\"]'")
    p.add_argument("--cmd", help="JSON array, e.g. '[\"python3\"]'")
    p.add_argument("--user", help="UID[:GID] or name")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="image label")
    p.add_argument("--tmpdir", help="where to stage layers (default: $TMPDIR)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocibuild", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="write an image from a base (or scratch) and directories")
    p.add_argument("--base", default="scratch", help="base OCI layout tarball, or 'scratch'")
    p.add_argument(
        "--layer",
        action="append",
        default=[],
        metavar="DIR[:DEST]",
        help="add DIR's contents at DEST (default /); all --layer go in one layer",
    )
    p.add_argument(
        "--preserve-ownership",
        action="store_true",
        help="keep files' uid/gid (for root filesystems); default is 0:0",
    )
    p.add_argument(
        "--preserve-mtimes",
        action="store_true",
        help="keep files' mtimes (root filesystems with .pyc files); default is"
        " $SOURCE_DATE_EPOCH or 0",
    )
    _add_config_flags(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "add-python-packages", help="add a layer of pip-installed packages for the image's Python"
    )
    p.add_argument("--base", required=True, help="base OCI layout tarball with python3")
    p.add_argument("--python-version", help="image Python X.Y (default: from the base image)")
    p.add_argument("--python", default=sys.executable, help="host interpreter that runs pip")
    p.add_argument("--no-compile", action="store_true", help="do not add .pyc files")
    p.add_argument("pip_args", nargs="*", help="after --: what pip should install")
    _add_config_flags(p)
    p.set_defaults(func=cmd_add_python_packages)

    p = sub.add_parser("inspect", help="print index, manifest and config as JSON")
    p.add_argument("image")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("load", help="import image tarballs into containerd")
    p.add_argument("images", nargs="+")
    p.add_argument(
        "--address", default=os.environ.get("CONTAINERD_ADDRESS", "/run/containerd/containerd.sock")
    )
    p.add_argument("--namespace", "-n", default="k8s.io")
    p.add_argument("--ctr", default="ctr", help="ctr binary")
    p.set_defaults(func=cmd_load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BuildError as exc:
        print(f"ocibuild: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
