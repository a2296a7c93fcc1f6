"""OCI image layouts: references, blobs, deterministic layers, images and their tarballs."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import os
import re
import stat
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


def read_json_member(tar: tarfile.TarFile, name: str) -> Any:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise BuildError(f"{tar.name}: no {name} (is it an OCI image layout tarball?)")
    return json.load(f)


def blob_name(digest: str) -> str:
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
        index = read_json_member(tar, "index.json")
        entry = select_manifest(index, platform, str(path))
        manifest = read_json_member(tar, blob_name(entry["digest"]))
        config = read_json_member(tar, blob_name(manifest["config"]["digest"]))
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
        member = blob_name(layer["digest"])
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


def json_list(text: str, flag: str) -> list[str]:
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
                name = blob_name(digest)
                if digest in small_blobs:
                    add_bytes(name, small_blobs[digest])
                    continue
                size = next(layer.size for layer in image.layers if layer.digest == digest)
                src, member = image.blob_sources[digest]
                with open_blob(src, member) as f:
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
def open_blob(src: Path, member: str | None) -> Iterator[IO[bytes]]:
    if member is None:
        with src.open("rb") as f:
            yield f
        return
    with tarfile.open(src, "r:") as tar:
        f = tar.extractfile(member)
        if f is None:
            raise BuildError(f"{src}: {member} is not a file")
        yield f
