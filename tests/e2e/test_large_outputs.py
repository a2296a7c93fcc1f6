"""Large outputs on a real cluster: compressed, split into parts, handed to a child; the limit.

A step returns about 5 MiB of JSON that compresses poorly: the step pod stores it gzipped
and split into parts (``<job>-output-1..N``, then the head ``<job>-output``), the
operator projects the head and every part into the child's pod, and the child reads it
back whole (its digest checked) and returns a small summary. A step returning 11 MiB
fails at once, for good, saying why and what to do instead.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import pytest
from kubernetes import client

from kubehatch import workflow_manifests
from kubehatch.api import outputs, wire
from kubehatch.errors import OutputTooLargeError
from kubehatch_operator.kube import Kube
from tests.e2e import kube
from tests.e2e.workers import large

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

MANIFESTS = {
    m["metadata"]["name"]: m for m in workflow_manifests(large.worker, worker_ref=large.WORKER_REF)
}
FINAL = {"Succeeded", "Failed", "Cancelled", "TimedOut"}


def _run(namespace: str, image: str, workflow: str, run: str) -> dict[str, Any]:
    kube.apply_workflow(namespace, MANIFESTS[workflow], image)
    kube.create_run(namespace, run, workflow)
    return kube.wait_for_phase(namespace, run, FINAL, timeout=240)


def _stored(namespace: str, head: str) -> tuple[client.V1ConfigMap, list[client.V1ConfigMap]]:
    """The head ConfigMap of an output and its parts, in order."""
    core = client.CoreV1Api()
    found = core.read_namespaced_config_map(head, namespace)
    count = outputs.parts_of({"annotations": found.metadata.annotations or {}})
    names = [outputs.part_name(head, n) for n in range(1, count + 1)]
    return found, [core.read_namespaced_config_map(name, namespace) for name in names]


def test_a_five_mib_output_is_split_into_parts_and_reaches_the_child_whole(
    op_namespace: str, step_image: str
) -> None:
    body = _run(op_namespace, step_image, "large-output", "big")
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    steps = status["steps"]
    head_name = steps["produce"]["outputConfigMap"]
    head, parts = _stored(op_namespace, head_name)

    # The head: a manifest, its part count and digest also in annotations; no data itself.
    annotations = head.metadata.annotations
    assert set(head.data or {}) == {outputs.MANIFEST_KEY} and not head.binary_data
    manifest = outputs.Manifest.parse(head.data[outputs.MANIFEST_KEY], head_name)
    assert 4 <= manifest.parts == len(parts) <= outputs.MAX_PARTS
    assert annotations[outputs.ANNOTATION_OUTPUT_SHA256] == manifest.sha256
    assert manifest.json_bytes > 5 * 1024 * 1024  # 5 MiB of base64, and the rest of the JSON

    # The parts: owned by the run and labelled as the head is, plus their number.
    uid = body["metadata"]["uid"]
    for number, part in enumerate(parts, start=1):
        assert part.metadata.owner_references[0].uid == uid
        assert part.metadata.labels == {
            **head.metadata.labels,
            outputs.LABEL_OUTPUT_PART: str(number),
        }
    packed = b"".join(base64.b64decode(p.binary_data[outputs.PART_KEY]) for p in parts)
    assert hashlib.sha256(packed).hexdigest() == manifest.sha256
    value = outputs.decode(
        outputs.from_configmap(head.data, head.binary_data),
        lambda n: base64.b64decode(parts[n - 1].binary_data[outputs.PART_KEY]),
        what=head_name,
    )
    blob = value["blob"]
    assert len(blob) == value["length"] == 5 * 1024 * 1024

    # The child read it whole: its digest and length are the parent's.
    summary = kube.output(op_namespace, steps["check"]["outputConfigMap"])
    assert summary == {"length": len(blob), "sha256": hashlib.sha256(blob.encode()).hexdigest()}
    assert summary["sha256"] == value["sha256"]

    # The child's Job projected the head and every part (the count learnt from the head
    # the operator watches; every possible part when it had not seen the head).
    job = client.BatchV1Api().read_namespaced_job(steps["check"]["jobName"], op_namespace)
    volume = next(v for v in job.spec.template.spec.volumes if v.name == "parents")
    names = [s.config_map.name for s in volume.projected.sources]
    assert names[0] == head_name
    assert names[1 : 1 + len(parts)] == [p.metadata.name for p in parts]
    assert len(names) in (1 + len(parts), 1 + outputs.MAX_PARTS), names
    print(f"child's Job projected {len(names) - 1} part(s) of {len(parts)}")

    # The operator reads a small output, and refuses this one for conditions, saying why.
    async def read(name: str) -> Any:
        return await Kube(client.ApiClient()).read_output(op_namespace, name)

    assert asyncio.run(read(steps["check"]["outputConfigMap"])) == summary
    with pytest.raises(OutputTooLargeError) as caught:
        asyncio.run(read(head_name))
    assert caught.value.size == manifest.json_bytes
    assert caught.value.limit == outputs.MAX_OPERATOR_READ_BYTES

    # Everything the run made is its own: deleting it deletes the parts too.
    listed = client.CoreV1Api().list_namespaced_config_map(
        op_namespace, label_selector=f"{wire.LABEL_RUN}=big,{outputs.LABEL_OUTPUT_PART}"
    )
    assert sorted(cm.metadata.name for cm in listed.items) == sorted(p.metadata.name for p in parts)


def test_an_eleven_mib_output_fails_the_step_for_good_saying_what_to_do(
    op_namespace: str, step_image: str
) -> None:
    status = _run(op_namespace, step_image, "too-large-output", "huge")["status"]
    assert status["phase"] == "Failed", status
    step = status["steps"]["too-big"]
    assert step["phase"] == "Failed"
    assert step["attempts"] == 1  # permanent: its two retries are not used
    size = len(json.dumps("x" * (11 * 1024 * 1024)))
    for part in (
        f"output of step 'too-big' is {size} bytes of JSON (11.0 MiB)",
        f"more than a step may return ({outputs.MAX_OUTPUT_BYTES} bytes, 10.0 MiB)",
        "PersistentVolumeClaim",
        "object storage",
        "return a reference to it",
    ):
        assert part in step["message"], step["message"]
    stored = client.CoreV1Api().list_namespaced_config_map(
        op_namespace, label_selector=f"{wire.LABEL_RUN}=huge,{wire.LABEL_STEP}"
    )
    assert stored.items == []  # nothing half-written
