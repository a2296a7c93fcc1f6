"""The image being assembled in memory: its config, its layers, and where their bytes are.

An `Image` starts from a base (`layout.load_base`) or from `scratch_image`, gains layers
with `add_layer`, and is written out by `layout.write_layout`; no blob is held in memory.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .blobs import Descriptor, HashingWriter
from .layers import LayerSpec, LayerStats, write_layer
from .oci import MEDIA_LAYER
from .reproducible import iso_timestamp, source_date_epoch

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclasses.dataclass
class Image:
    """An image being assembled: its config and its layer blobs (descriptor -> source)."""

    config: dict[str, Any]
    layers: list[Descriptor]
    # digest -> (tarball path, member name) for blobs copied from a base image,
    # or digest -> (temp file path, None) for new layers.
    blob_sources: dict[str, tuple[Path, str | None]]


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
        hw = HashingWriter(raw)
        with io.BufferedWriter(hw) as out:
            stats = write_layer(
                specs,
                out,
                mtime=mtime,
                preserve_ownership=preserve_ownership,
                preserve_mtimes=preserve_mtimes,
            )
    digest = hw.digest
    image.layers.append(Descriptor(MEDIA_LAYER, digest, hw.size))
    image.blob_sources[digest] = (Path(tmp), None)
    image.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    image.config["rootfs"].setdefault("diff_ids", []).append(digest)
    history = {"created": iso_timestamp(mtime), "created_by": comment}
    image.config.setdefault("history", []).append(history)
    return stats
