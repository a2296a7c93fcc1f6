"""What makes the builder's output byte-for-byte repeatable: fixed times, bare tar entries.

Every timestamp written (tar mtimes, ``created`` in the config and history) comes from
``SOURCE_DATE_EPOCH`` (default 0), and every tar entry starts without owner names, so the
same input always gives the same digests, in layers and in the layout tarball alike.
"""

from __future__ import annotations

import datetime
import os
import tarfile

from .errors import BuildError


def source_date_epoch() -> int:
    """The fixed mtime for every layer and layout entry (reproducible-builds convention)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        return int(value)
    except ValueError as exc:
        raise BuildError(f"SOURCE_DATE_EPOCH must be an integer, got {value!r}") from exc


def iso_timestamp(epoch: int) -> str:
    """An epoch as the UTC RFC 3339 string image configs use for ``created``."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tar_entry(
    name: str, mtime: int, *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, size: int = 0
) -> tarfile.TarInfo:
    """A tar header owned by 0:0 with no user/group names; the caller adjusts the rest."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
