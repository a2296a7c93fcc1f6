"""Step outputs on the wire: how a step's JSON output is laid out in ConfigMaps, and read back.

The step pod writes its output, the operator projects it into the children's pods (and
reads small ones itself, for conditions), the children's pods read it: all of them go
through this module. The form depends on the size of the output's JSON (compact
``json.dumps``, as the step pod encodes it):

- up to :data:`COMPRESS_ABOVE` (256 KiB): as it always was, one ConfigMap ``<job>-output``
  with the JSON in data key ``output.json``, readable with ``kubectl get cm -o yaml``;
- larger: gzip-compressed into binaryData ``output.json.gz`` of the same ConfigMap, while
  the compressed data fits in one ConfigMap (:data:`PART_BYTES`);
- larger still: the compressed data is split into parts ``<job>-output-1`` ..
  ``<job>-output-N`` (binaryData ``part``), and the head ``<job>-output`` holds a manifest
  (data key ``output.parts.json``: the number of parts, the sha256 digest and length of
  the compressed data, the JSON's size), repeated in its annotations;
- above :data:`MAX_OUTPUT_BYTES` (10 MiB of JSON) the step fails for good
  (:func:`check_size`): bigger data belongs in a volume or object storage the step writes
  itself, with a reference to it as its output.

Every ConfigMap is owned by the run and carries the attempt's labels; parts also carry
:data:`LABEL_OUTPUT_PART`, which keeps them out of the operator's watch of outputs.
Parts are written first and the head last, so the head's existence means the output is
complete (the operator takes it as the attempt's success). The operator learns the
number of parts from the head's :data:`ANNOTATION_OUTPUT_PARTS` and projects the head's
keys and every part into a child's parents volume under the names :func:`head_files` and
:func:`part_file` give; :func:`decode` puts the pieces back together, checking the digest.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubehatch.api import stepenv, wire
from kubehatch.api.spawns import ANNOTATION_SPAWN_REQUEST
from kubehatch.errors import OutputCorruptError, OutputTooLargeError

KIB = 1024
MIB = 1024 * KIB

COMPRESS_ABOVE = 256 * KIB
"""Outputs up to this many bytes of JSON stay plain (data key output.json)."""
PART_BYTES = MIB - 64 * KIB
"""Compressed bytes per ConfigMap: the API server refuses more than 1 MiB of data in one,
and the object's metadata needs room too."""
MAX_OUTPUT_BYTES = 10 * MIB
"""The most JSON a step may return."""
MAX_PARTS = -(-(MAX_OUTPUT_BYTES + MAX_OUTPUT_BYTES // 1000 + 4 * KIB) // PART_BYTES)
"""Parts of the largest output, even incompressible (gzip adds at most about 0.1%)."""
MAX_OPERATOR_READ_BYTES = MIB
"""The most JSON the operator reads from an output (for conditions over parents' outputs)."""
OPERATOR_READER = "the operator (for conditions over outputs)"
"""Who reads at most MAX_OPERATOR_READ_BYTES, as messages name it."""

GZIP_KEY = "output.json.gz"
"""binaryData key of a compressed output in its head ConfigMap."""
MANIFEST_KEY = "output.parts.json"
"""data key of a split output's manifest in its head ConfigMap."""
PART_KEY = "part"
"""binaryData key of one part's bytes."""
LABEL_OUTPUT_PART = f"{wire.GROUP}/output-part"
"""On parts only: the part's number (1..N)."""
ANNOTATION_OUTPUT_PARTS = f"{wire.GROUP}/output-parts"
"""On a split output's head: the number of parts (what the operator projects)."""
ANNOTATION_OUTPUT_SHA256 = f"{wire.GROUP}/output-sha256"
ANNOTATION_OUTPUT_BYTES = f"{wire.GROUP}/output-bytes"
"""On compressed and split heads: the size of the output's JSON, in bytes."""
ANNOTATION_OUTPUT_ENCODING = f"{wire.GROUP}/output-encoding"

_MANIFEST_VERSION = 1


def part_name(head: str, number: int) -> str:
    """The ConfigMap of part ``number`` (from 1) of the output ``head``."""
    return f"{head}-{number}"


def head_files(parent: str) -> dict[str, str]:
    """Head ConfigMap key -> file name in a child's parents volume, for one parent."""
    return {
        wire.OUTPUT_KEY: f"{parent}.json",
        GZIP_KEY: f"{parent}.json.gz",
        MANIFEST_KEY: f"{parent}.parts.json",
    }


def part_file(parent: str, number: int) -> str:
    """The file of part ``number`` of a parent's output in a child's parents volume."""
    return f"{parent}.part-{number}"


def parts_of(meta: Mapping[str, Any]) -> int:
    """The number of parts an output's head announces (0: not split), from its metadata."""
    annotations = wire.mapping(meta.get("annotations"))
    try:
        parts = int(annotations.get(ANNOTATION_OUTPUT_PARTS) or 0)
    except (TypeError, ValueError):
        return 0
    return parts if 0 < parts <= MAX_PARTS else 0


# --- writing ---------------------------------------------------------------------------
def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


def check_size(step: str, size: int) -> None:
    """Raise OutputTooLargeError when ``size`` bytes of JSON are more than a step may return."""
    if size > MAX_OUTPUT_BYTES:
        raise OutputTooLargeError(
            f"output of step {step!r} is {size} bytes of JSON ({_mib(size)}), more than a "
            f"step may return ({MAX_OUTPUT_BYTES} bytes, {_mib(MAX_OUTPUT_BYTES)}): write "
            "the data to a volume (a PersistentVolumeClaim) or to object storage from the "
            "step itself, and return a reference to it (a path, a URL) instead",
            size=size,
            limit=MAX_OUTPUT_BYTES,
        )


@dataclass(frozen=True)
class Manifest:
    """What the head of a split output says about its parts."""

    parts: int
    sha256: str
    """Hex digest of the compressed data (all parts, in order)."""
    compressed_bytes: int
    json_bytes: int
    encoding: str = "gzip"

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": _MANIFEST_VERSION,
                "parts": self.parts,
                "encoding": self.encoding,
                "sha256": self.sha256,
                "compressedBytes": self.compressed_bytes,
                "jsonBytes": self.json_bytes,
            },
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, raw: bytes | str, what: str) -> Manifest:
        try:
            body = json.loads(raw)
            manifest = cls(
                parts=int(body["parts"]),
                sha256=str(body["sha256"]),
                compressed_bytes=int(body["compressedBytes"]),
                json_bytes=int(body["jsonBytes"]),
                encoding=str(body.get("encoding", "gzip")),
            )
        except (ValueError, TypeError, KeyError) as err:
            message = f"{what}: its manifest ({MANIFEST_KEY}) is broken: {err}"
            raise OutputCorruptError(message) from err
        if manifest.encoding != "gzip" or not 0 < manifest.parts <= MAX_PARTS:
            raise OutputCorruptError(
                f"{what}: its manifest announces {manifest.parts} part(s) encoded as "
                f"{manifest.encoding!r}; this kubehatch reads 1 to {MAX_PARTS} gzip parts"
            )
        return manifest


@dataclass(frozen=True)
class Encoded:
    """An output laid out for storage: the head's keys and annotations, and the parts."""

    data: dict[str, str] = field(default_factory=dict)
    binary: dict[str, bytes] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    parts: tuple[bytes, ...] = ()


def encode(text: str) -> Encoded:
    """Lay out an output's JSON text: plain, compressed, or compressed and split."""
    raw = text.encode()
    if len(raw) <= COMPRESS_ABOVE:
        return Encoded(data={wire.OUTPUT_KEY: text})
    import gzip  # here: a step pod with a small output need not load it

    # mtime=0: the same output gives the same bytes (a second pod of the attempt agrees).
    packed = gzip.compress(raw, compresslevel=6, mtime=0)
    annotations = {ANNOTATION_OUTPUT_ENCODING: "gzip", ANNOTATION_OUTPUT_BYTES: str(len(raw))}
    if len(packed) <= PART_BYTES:
        return Encoded(binary={GZIP_KEY: packed}, annotations=annotations)
    parts = tuple(packed[i : i + PART_BYTES] for i in range(0, len(packed), PART_BYTES))
    if len(parts) > MAX_PARTS:  # cannot happen within MAX_OUTPUT_BYTES; said plainly if it did
        raise OutputTooLargeError(
            f"the output compresses to {len(packed)} bytes, more than {MAX_PARTS} parts hold",
            size=len(raw),
            limit=MAX_OUTPUT_BYTES,
        )
    manifest = Manifest(len(parts), hashlib.sha256(packed).hexdigest(), len(packed), len(raw))
    annotations.update(
        {ANNOTATION_OUTPUT_PARTS: str(manifest.parts), ANNOTATION_OUTPUT_SHA256: manifest.sha256}
    )
    return Encoded(data={MANIFEST_KEY: manifest.to_json()}, annotations=annotations, parts=parts)


def configmaps(step: stepenv.StepEnv, text: str, *, spawn: bool = False) -> list[dict[str, Any]]:
    """The ConfigMaps of a step attempt's output, in the order to create them: the parts
    (if any), then the head. A small output is exactly ``wire.output_configmap``; a
    ``spawn`` request's head is marked (``kubehatch.api.spawns.ANNOTATION_SPAWN_REQUEST``)."""
    encoded = encode(text)
    if spawn:
        marked = {**encoded.annotations, ANNOTATION_SPAWN_REQUEST: "true"}
        encoded = dataclasses.replace(encoded, annotations=marked)
    if not encoded.binary and not encoded.parts and not encoded.annotations:
        return [stepenv.output_configmap(step, text)]
    owner = wire.owner_reference("WorkflowRun", step.run, step.run_uid, controller=False)

    def body(name: str, labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": step.namespace, "labels": labels}
        if annotations:
            meta["annotations"] = annotations
        meta["ownerReferences"] = [owner]
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}

    made = []
    for number, chunk in enumerate(encoded.parts, start=1):
        part = body(
            part_name(step.output_configmap, number),
            {**step.labels, LABEL_OUTPUT_PART: str(number)},
            {},
        )
        part["binaryData"] = {PART_KEY: base64.b64encode(chunk).decode()}
        made.append(part)
    head = body(step.output_configmap, step.labels, encoded.annotations)
    if encoded.data:
        head["data"] = dict(encoded.data)
    if encoded.binary:
        head["binaryData"] = {k: base64.b64encode(v).decode() for k, v in encoded.binary.items()}
    made.append(head)
    return made


# --- reading ---------------------------------------------------------------------------
def from_configmap(
    data: Mapping[str, str] | None, binary_data: Mapping[str, str] | None
) -> dict[str, bytes]:
    """A ConfigMap's keys as :func:`decode` takes them (binaryData as the API sends it:
    base64)."""
    files = {key: value.encode() for key, value in (data or {}).items()}
    for key, value in (binary_data or {}).items():
        files[key] = base64.b64decode(value)
    return files


def _too_large(what: str, size: int | None, limit: int, reader: str) -> OutputTooLargeError:
    told = f"is {size} bytes of JSON" if size is not None else "unpacks to more JSON"
    return OutputTooLargeError(
        f"{what} {told}, more than {reader} reads ({limit} bytes, {_mib(limit)})",
        size=size,
        limit=limit,
    )


def _gunzip(packed: bytes, what: str, limit: int, reader: str) -> bytes:
    """Decompressed, never past ``limit`` bytes (a small gzip can unpack to a lot)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        raw = inflater.decompress(packed, limit + 1)
    except zlib.error as err:
        raise OutputCorruptError(f"{what}: its gzip data is broken: {err}") from err
    if len(raw) > limit:
        raise _too_large(what, None, limit, reader)
    if not inflater.eof:
        raise OutputCorruptError(f"{what}: its gzip data is truncated")
    return raw


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as err:
        raise OutputCorruptError(f"{what}: its JSON is broken: {err}") from err


def manifest_of(files: Mapping[str, bytes], what: str) -> Manifest | None:
    """The manifest of a split output's head (None for a plain or compressed one)."""
    if wire.OUTPUT_KEY in files or GZIP_KEY in files or MANIFEST_KEY not in files:
        return None
    return Manifest.parse(files[MANIFEST_KEY], what)


def decode(
    files: Mapping[str, bytes],
    part: Callable[[int], bytes | None],
    *,
    what: str,
    limit: int = MAX_OUTPUT_BYTES,
    reader: str = "a step",
) -> Any:
    """The JSON value of a stored output, given the head's keys and a reader of parts.

    ``files`` maps head keys (``output.json``, ``output.json.gz``, ``output.parts.json``)
    to their bytes; ``part(n)`` returns part ``n`` or None when it is missing. None when
    the head has none of the keys (no output). Raises OutputTooLargeError beyond ``limit``
    bytes of JSON (before reading parts when the manifest tells), OutputCorruptError for a
    missing part, a digest or length mismatch, broken gzip or JSON. ``what`` names the
    output in messages ("output of step 'load'"), ``reader`` who reads it ("the operator").
    """
    if wire.OUTPUT_KEY in files:
        raw = files[wire.OUTPUT_KEY]
        if len(raw) > limit:
            raise _too_large(what, len(raw), limit, reader)
        return _json(raw, what)
    if GZIP_KEY in files:
        return _json(_gunzip(files[GZIP_KEY], what, limit, reader), what)
    manifest = manifest_of(files, what)
    if manifest is None:
        return None
    if manifest.json_bytes > limit:
        raise _too_large(what, manifest.json_bytes, limit, reader)
    chunks = []
    for number in range(1, manifest.parts + 1):
        chunk = part(number)
        if chunk is None:
            raise OutputCorruptError(
                f"{what}: part {number} of {manifest.parts} is missing (ConfigMap "
                f"'<job>-output-{number}' deleted, or not mounted)"
            )
        chunks.append(chunk)
    packed = b"".join(chunks)
    digest = hashlib.sha256(packed).hexdigest()
    if len(packed) != manifest.compressed_bytes or digest != manifest.sha256:
        raise OutputCorruptError(
            f"{what}: its {manifest.parts} parts do not match the digest in its manifest "
            f"({len(packed)} bytes, sha256 {digest[:12]}; expected "
            f"{manifest.compressed_bytes} bytes, sha256 {manifest.sha256[:12]}); a pod of "
            "that step wrote different parts before it was replaced: run the step again"
        )
    return _json(_gunzip(packed, what, limit, reader), what)
