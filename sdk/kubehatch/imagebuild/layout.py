"""OCI image layout tarballs: reading a base image out of one, writing an image into one.

The layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) is the only format the
builder reads and writes; ``ctr images import`` takes it as is, and it can be a base.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .blobs import Descriptor, blob_name, canonical_json, open_blob, sha256_digest
from .errors import BuildError
from .image import Image
from .oci import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
)
from .references import normalize_reference
from .reproducible import iso_timestamp, source_date_epoch, tar_entry

# --------------------------------------------------------------------------- reading


def read_json_member(tar: tarfile.TarFile, name: str) -> Any:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        source = os.fsdecode(tar.name) if tar.name is not None else "<unnamed tar>"
        raise BuildError(f"{source}: no {name} (is it an OCI image layout tarball?)")
    return json.load(f)


def select_manifest(
    index: dict[str, Any], platform: tuple[str, str], source: str
) -> dict[str, Any]:
    """Pick the manifest for this platform from an index (a single entry is taken as is)."""
    manifests: list[dict[str, Any]] = [
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


def read_image_json(
    tar: tarfile.TarFile, platform: tuple[str, str], source: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The (index, manifest, config) documents of a layout tarball, for this platform."""
    index = read_json_member(tar, "index.json")
    entry = select_manifest(index, platform, source)
    manifest = read_json_member(tar, blob_name(entry["digest"]))
    config = read_json_member(tar, blob_name(manifest["config"]["digest"]))
    return index, manifest, config


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
        _, manifest, config = read_image_json(tar, platform, str(path))
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


# --------------------------------------------------------------------------- writing


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
    image.config["created"] = iso_timestamp(mtime)
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
                tar.addfile(tar_entry(name, mtime, size=len(data)), io.BytesIO(data))

            for directory in ("blobs", "blobs/sha256"):
                tar.addfile(tar_entry(directory, mtime, kind=tarfile.DIRTYPE, mode=0o755))
            blob_digests = sorted(set(small_blobs) | {layer.digest for layer in image.layers})
            for digest in blob_digests:
                name = blob_name(digest)
                if digest in small_blobs:
                    add_bytes(name, small_blobs[digest])
                    continue
                size = next(layer.size for layer in image.layers if layer.digest == digest)
                src, member = image.blob_sources[digest]
                with open_blob(src, member) as f:
                    tar.addfile(tar_entry(name, mtime, size=size), f)
            add_bytes("index.json", canonical_json(index))
            add_bytes("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        os.replace(tmp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return index
