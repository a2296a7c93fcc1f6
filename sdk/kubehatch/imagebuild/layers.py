"""Deterministic layer tarballs built from host directories.

A layer's bytes depend only on the content put in it: entries are sorted by path, owners
and mtimes are fixed (unless asked to keep them), and nothing host-specific (user names,
xattrs, directory order) leaks in, so an unchanged input gives an unchanged digest.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from .errors import BuildError
from .reproducible import tar_entry


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


@dataclasses.dataclass
class LayerStats:
    """What went into a layer, so callers can report what was skipped."""

    entries: int = 0
    skipped_special: list[str] = dataclasses.field(default_factory=list)


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

    def host_info(name: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tar_entry(name, mtime, mode=stat.S_IMODE(st.st_mode))
        if preserve_ownership:
            info.uid, info.gid = st.st_uid, st.st_gid
        if preserve_mtimes:
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
                    tar.addfile(tar_entry(d, mtime, kind=tarfile.DIRTYPE, mode=0o755))
                    stats.entries += 1
            for rel, path in _walk_sorted(spec.src):
                name = f"{prefix}/{rel}" if prefix else rel
                st = path.lstat()
                info = host_info(name, st)
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
                        info.size = st.st_size
                        with path.open("rb") as f:
                            tar.addfile(info, f)
                else:
                    stats.skipped_special.append(name)
                    continue
                stats.entries += 1
    return stats
