"""Content-addressed blobs: descriptors, digests, and where a blob's bytes come from.

An image's layer blobs live either in a base image tarball (copied, never re-hashed) or
in a temporary file written by this builder (hashed as it is written); these helpers are
shared by the layer writer, the layout reader and writer, and the pip layer code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import BuildError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


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


def blob_name(digest: str) -> str:
    """The path of a blob inside an OCI layout: ``blobs/<algorithm>/<hex>``."""
    algo, _, hexd = digest.partition(":")
    return f"blobs/{algo}/{hexd}"


class HashingWriter(io.RawIOBase):
    """A write-only raw stream that hashes and counts what passes through to the real file.

    Wrap it in ``io.BufferedWriter`` to get the binary file object tarfile writes to.
    """

    def __init__(self, out: IO[bytes]) -> None:
        super().__init__()
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data)
        self._out.write(view)
        self.hash.update(view)
        self.size += len(view)
        return len(view)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


@contextlib.contextmanager
def open_blob(src: Path, member: str | None) -> Iterator[IO[bytes]]:
    """Open a blob source: a plain file (``member`` None) or a member of a tarball."""
    if member is None:
        with src.open("rb") as f:
            yield f
        return
    with tarfile.open(src, "r:") as tar:
        blob = tar.extractfile(member)
        if blob is None:
            raise BuildError(f"{src}: {member} is not a file")
        yield blob
