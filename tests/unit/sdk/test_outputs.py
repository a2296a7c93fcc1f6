"""Large step outputs: plain, compressed, split into parts, put back together, refused."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import os
import threading
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from kubehatch import _steprunner as steprunner
from kubehatch.api import outputs, stepenv
from kubehatch.api.outputs import (
    COMPRESS_ABOVE,
    MANIFEST_KEY,
    MAX_OUTPUT_BYTES,
    MAX_PARTS,
    PART_BYTES,
    Manifest,
)
from kubehatch.api.stepenv import StepEnv
from kubehatch.api.wire import EXIT_PERMANENT
from kubehatch.errors import OutputCorruptError, OutputTooLargeError, PermanentError
from tests.unit.sdk.test_incluster import FakeApi, api, plain_http

__all__ = ["api"]  # the fixture, shared

STEP = StepEnv(
    namespace="ns",
    workflow="wf",
    run="r1",
    run_uid="uid-1",
    step="load",
    action="load",
    attempt=2,
    parents=(),
    output_configmap="r1-load-2-x7k2p-output",
)


def random_json(size: int) -> str:
    """About ``size`` bytes of JSON that compresses poorly (base64 of random bytes)."""
    return json.dumps({"blob": base64.b64encode(os.urandom(size * 3 // 4)).decode()})


def pieces(made: list[dict[str, Any]]) -> tuple[dict[str, bytes], dict[int, bytes]]:
    """The head's keys and the parts' bytes, as the API would hand them back."""
    *parts, head = made
    files = outputs.from_configmap(head.get("data"), head.get("binaryData"))
    chunks = {
        int(p["metadata"]["labels"][outputs.LABEL_OUTPUT_PART]): base64.b64decode(
            p["binaryData"][outputs.PART_KEY]
        )
        for p in parts
    }
    return files, chunks


def roundtrip(text: str) -> Any:
    files, chunks = pieces(outputs.configmaps(STEP, text))
    return outputs.decode(files, chunks.get, what="output of step 'load'")


# --- the three forms -------------------------------------------------------------------------
def test_a_small_output_stays_one_plain_configmap_as_before() -> None:
    text = json.dumps({"a": "x" * (COMPRESS_ABOVE - 20)}, separators=(",", ":"))
    assert len(text) <= COMPRESS_ABOVE
    assert outputs.configmaps(STEP, text) == [stepenv.output_configmap(STEP, text)]
    assert roundtrip(text) == json.loads(text)


def test_a_larger_output_is_compressed_into_binary_data_of_the_same_configmap() -> None:
    text = json.dumps({"rows": [{"id": i, "name": f"user-{i}"} for i in range(30_000)]})
    assert len(text) > COMPRESS_ABOVE
    (head,) = outputs.configmaps(STEP, text)
    assert head["metadata"]["name"] == STEP.output_configmap
    assert "data" not in head and list(head["binaryData"]) == [outputs.GZIP_KEY]
    assert gzip.decompress(base64.b64decode(head["binaryData"][outputs.GZIP_KEY])) == text.encode()
    annotations = head["metadata"]["annotations"]
    assert annotations[outputs.ANNOTATION_OUTPUT_BYTES] == str(len(text))
    assert outputs.ANNOTATION_OUTPUT_PARTS not in annotations
    assert head["metadata"]["labels"] == STEP.labels
    assert roundtrip(text) == json.loads(text)


def test_an_output_larger_than_a_configmap_is_split_into_parts_written_before_the_head() -> None:
    text = random_json(5 * 1024 * 1024)
    made = outputs.configmaps(STEP, text)
    *parts, head = made
    packed = b"".join(base64.b64decode(p["binaryData"]["part"]) for p in parts)
    assert gzip.decompress(packed) == text.encode()
    assert len(parts) == -(-len(packed) // PART_BYTES) >= 4
    assert [p["metadata"]["name"] for p in parts] == [
        f"{STEP.output_configmap}-{n}" for n in range(1, len(parts) + 1)
    ]
    for number, part in enumerate(parts, start=1):
        # The attempt's labels (owned like the head), plus the part's number, which keeps
        # parts out of the operator's watch of outputs.
        assert part["metadata"]["labels"] == {**STEP.labels, outputs.LABEL_OUTPUT_PART: str(number)}
        assert part["metadata"]["ownerReferences"] == head["metadata"]["ownerReferences"]
        assert len(base64.b64decode(part["binaryData"]["part"])) <= PART_BYTES
    owner = head["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("WorkflowRun", "r1", "uid-1")
    assert "controller" not in owner
    manifest = Manifest.parse(head["data"][MANIFEST_KEY], "x")
    assert manifest.parts == len(parts) and manifest.json_bytes == len(text)
    assert manifest.sha256 == hashlib.sha256(packed).hexdigest()
    annotations = head["metadata"]["annotations"]
    assert annotations[outputs.ANNOTATION_OUTPUT_PARTS] == str(len(parts))
    assert annotations[outputs.ANNOTATION_OUTPUT_SHA256] == manifest.sha256
    assert outputs.parts_of(head["metadata"]) == len(parts)
    assert roundtrip(text) == json.loads(text)


def test_encoding_is_deterministic_so_a_second_pod_of_the_attempt_writes_the_same_parts() -> None:
    text = random_json(2 * 1024 * 1024)
    assert outputs.configmaps(STEP, text) == outputs.configmaps(STEP, text)


def test_the_largest_output_fits_in_max_parts_even_incompressible() -> None:
    # Worst case for gzip: bytes it cannot shrink (a step's JSON compresses better).
    packed = gzip.compress(os.urandom(MAX_OUTPUT_BYTES), mtime=0)
    assert -(-len(packed) // PART_BYTES) <= MAX_PARTS


# --- reading back ----------------------------------------------------------------------------
def split(text: str) -> tuple[dict[str, bytes], dict[int, bytes]]:
    return pieces(outputs.configmaps(STEP, text))


def test_a_missing_part_is_named() -> None:
    files, chunks = split(random_json(3 * 1024 * 1024))
    del chunks[2]
    with pytest.raises(OutputCorruptError, match=r"part 2 of \d+ is missing"):
        outputs.decode(files, chunks.get, what="output of step 'load'")


def test_parts_that_do_not_match_the_digest_are_refused() -> None:
    files, chunks = split(random_json(3 * 1024 * 1024))
    chunks[1] = bytes([chunks[1][0] ^ 1]) + chunks[1][1:]  # same length, one bit off
    with pytest.raises(OutputCorruptError, match="do not match the digest") as caught:
        outputs.decode(files, chunks.get, what="output of step 'load'")
    assert "output of step 'load'" in str(caught.value)
    assert isinstance(caught.value, PermanentError)  # a retry reads the same parts


def test_parts_of_another_length_are_refused() -> None:
    files, chunks = split(random_json(3 * 1024 * 1024))
    chunks[3] = chunks[3][:-1]
    with pytest.raises(OutputCorruptError, match="do not match the digest"):
        outputs.decode(files, chunks.get, what="x")


@pytest.mark.parametrize(
    "manifest",
    [b"{", b'{"parts": 2}', b'{"parts": 99, "sha256": "", "compressedBytes": 1, "jsonBytes": 1}'],
)
def test_a_broken_manifest_is_refused(manifest: bytes) -> None:
    with pytest.raises(OutputCorruptError, match="manifest"):
        outputs.decode({MANIFEST_KEY: manifest}, lambda n: None, what="x")


def test_broken_or_truncated_gzip_is_refused() -> None:
    packed = gzip.compress(b'{"a": 1}')
    with pytest.raises(OutputCorruptError, match="truncated"):
        outputs.decode({outputs.GZIP_KEY: packed[:-12]}, lambda n: None, what="x")
    with pytest.raises(OutputCorruptError, match="gzip data is broken"):
        outputs.decode({outputs.GZIP_KEY: b"not gzip"}, lambda n: None, what="x")


def test_a_head_with_no_output_key_reads_as_none() -> None:
    assert outputs.decode({}, lambda n: None, what="x") is None


def test_a_reader_with_a_lower_limit_refuses_before_reading_parts() -> None:
    files, chunks = split(random_json(3 * 1024 * 1024))
    asked: list[int] = []

    def part(number: int) -> bytes | None:
        asked.append(number)
        return chunks.get(number)

    with pytest.raises(OutputTooLargeError, match="more than the operator reads") as caught:
        outputs.decode(files, part, what="x", limit=1024 * 1024, reader="the operator")
    assert asked == [] and caught.value.limit == 1024 * 1024
    assert caught.value.size is not None and caught.value.size > 3 * 1024 * 1024


def test_a_small_gzip_that_unpacks_past_the_limit_stops_there() -> None:
    bomb = gzip.compress(b"[" + b"0," * (4 * 1024 * 1024) + b"0]")
    with pytest.raises(OutputTooLargeError, match="unpacks to more JSON"):
        outputs.decode({outputs.GZIP_KEY: bomb}, lambda n: None, what="x", limit=1024 * 1024)


# --- the limit -------------------------------------------------------------------------------
def test_more_than_ten_mib_fails_the_step_naming_step_size_limit_and_fix() -> None:
    assert steprunner.encode_output(STEP, "x" * (MAX_OUTPUT_BYTES - 2))
    with pytest.raises(OutputTooLargeError) as caught:
        steprunner.encode_output(STEP, "x" * (11 * 1024 * 1024))
    message = str(caught.value)
    for part in (
        "output of step 'load'",
        f"{11 * 1024 * 1024 + 2} bytes of JSON (11.0 MiB)",
        f"({MAX_OUTPUT_BYTES} bytes, 10.0 MiB)",
        "PersistentVolumeClaim",
        "object storage",
        "return a reference",
    ):
        assert part in message
    assert isinstance(caught.value, PermanentError)  # exit 3: never retried


# --- the step pod: store, then read as a child -----------------------------------------------
def test_the_pod_creates_the_parts_then_the_head(api: FakeApi) -> None:
    text = random_json(3 * 1024 * 1024)
    steprunner.store_output(STEP, text, server=api.server, connect=plain_http)
    names = [json.loads(r["body"])["metadata"]["name"] for r in api.requests]
    head = STEP.output_configmap
    assert names == [*(f"{head}-{n}" for n in range(1, len(names))), head]
    assert {r["path"] for r in api.requests} == {"/api/v1/namespaces/ns/configmaps"}
    assert [json.loads(r["body"]) for r in api.requests] == outputs.configmaps(STEP, text)


def test_a_part_that_exists_already_is_this_attempts_and_the_head_follows(api: FakeApi) -> None:
    """A 409 means an earlier try of the attempt wrote it (the digest tells a child if not)."""
    api.reply(409, {"kind": "Status", "reason": "AlreadyExists"})
    text = random_json(2 * 1024 * 1024)
    steprunner.store_output(STEP, text, server=api.server, connect=plain_http)
    assert json.loads(api.requests[-1]["body"])["metadata"]["name"] == STEP.output_configmap


def project(directory: Path, parent: str, made: list[dict[str, Any]]) -> None:
    """Write what the operator's projected volume shows a child of ``parent``."""
    files, chunks = pieces(made)
    for key, name in outputs.head_files(parent).items():
        if key in files:
            (directory / name).write_bytes(files[key])
    for number, chunk in chunks.items():
        (directory / outputs.part_file(parent, number)).write_bytes(chunk)


@pytest.mark.parametrize("size", [100, 400 * 1024, 4 * 1024 * 1024])
def test_a_child_reads_its_parents_output_in_any_form(tmp_path: Path, size: int) -> None:
    text = random_json(size)
    project(tmp_path, "big", outputs.configmaps(STEP, text))
    child = dataclasses.replace(
        STEP, step="use", parents=("big", "none"), parents_dir=PurePosixPath(tmp_path)
    )
    ctx = steprunner.build_context(child, threading.Event())
    assert ctx.step_output("big") == json.loads(text)
    assert ctx.step_output("none") is None


def test_a_child_whose_parent_lost_a_part_fails_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, "big", outputs.configmaps(STEP, random_json(3 * 1024 * 1024)))
    (tmp_path / outputs.part_file("big", 2)).unlink()
    (tmp_path / "input").mkdir()
    log = tmp_path / "termination-log"
    monkeypatch.setattr(steprunner, "TERMINATION_LOG", log)
    monkeypatch.setattr(steprunner, "store_output", partial(pytest.fail, "nothing to store"))
    env = {
        "KUBEHATCH_RUN": "r1",
        "KUBEHATCH_STEP": "use",
        "KUBEHATCH_ACTION": "use",
        "KUBEHATCH_WORKER": "kubehatch:Worker",  # never reached: the context fails first
        "KUBEHATCH_PARENTS": "big",
        "KUBEHATCH_INPUT_DIR": str(tmp_path / "input"),
        "KUBEHATCH_PARENTS_DIR": str(tmp_path),
    }
    monkeypatch.setattr("kubehatch._loader.load_worker", lambda ref: object())
    assert steprunner.main(env) == EXIT_PERMANENT
    message = log.read_text()
    assert message.startswith("OutputCorruptError: output of step 'big' (a parent of 'use')")
    assert "part 2 of" in message
