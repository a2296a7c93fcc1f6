"""Workflows of the large-output tests (tests/e2e/test_large_outputs.py).

``large-output``: a step returns about 5 MiB of JSON that compresses poorly (base64 of
random bytes), stored compressed and split into parts; its child checks the data against
the digest and length the parent computed, and returns a small summary.
``too-large-output``: a step returns 11 MiB, more than a step may: it fails for good.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from kubehatch import Context, Fn, PermanentError, Worker, WorkflowJob

WORKER_REF = "tests.e2e.workers.large:worker"
"""What the Workflows' spec.worker names (the e2e image's default worker is another one)."""

RANDOM_BYTES = 3 * 1024 * 1024 + 768 * 1024
"""3.75 MiB of random bytes: 5 MiB once base64-encoded."""

# The tests replace the image with the one they built for this session.
worker = Worker("large", image="localhost/kubehatch/e2e:placeholder")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def produce(ctx: Context) -> dict[str, Any]:
    size = int(ctx.workflow_input().get("bytes", RANDOM_BYTES))
    blob = base64.b64encode(os.urandom(size)).decode()
    return {"blob": blob, "length": len(blob), "sha256": _digest(blob)}


def check(ctx: Context) -> dict[str, Any]:
    parent = ctx.step_output("produce")
    blob = parent["blob"]
    if len(blob) != parent["length"] or _digest(blob) != parent["sha256"]:
        raise PermanentError(
            f"the parent's blob is {len(blob)} characters, sha256 {_digest(blob)}; it said "
            f"{parent['length']} characters, sha256 {parent['sha256']}"
        )
    return {"length": len(blob), "sha256": _digest(blob)}


first = Fn(produce).set_name("produce")
worker.register_workflow(
    WorkflowJob(name="large-output", steps=[first, Fn(check).set_name("check").add_parents(first)])
)


def too_big(ctx: Context) -> str:
    return "x" * (11 * 1024 * 1024)


# Retries allowed, to show that the limit is not retried.
worker.register_workflow(
    WorkflowJob(name="too-large-output", steps=[Fn(too_big).set_name("too-big").set_retries(2)])
)
