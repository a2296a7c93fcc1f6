"""Large outputs on the operator's side: projecting parts, learning their count, reading."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubehatch.api import outputs, stepenv, wire
from kubehatch.errors import OutputCorruptError, OutputTooLargeError
from kubehatch_operator.jobs import parent_sources, step_job
from kubehatch_operator.kube import Kube
from kubehatch_operator.model import AttemptState
from kubehatch_operator.outputs import SELECTOR
from kubehatch_operator.settings import StepSettings
from kubehatch_operator.store import Store
from tests.unit.operator.test_jobs import SPEC
from tests.unit.operator.test_store_and_patches import job_body, output_meta, run_body

STEP = stepenv.StepEnv(
    namespace="ns",
    workflow="wf",
    run="r1",
    run_uid="r1-uid",
    step="a",
    action="a",
    attempt=2,
    parents=(),
    output_configmap="r1-a-2-output",
)


def random_json(size: int) -> str:
    return json.dumps(base64.b64encode(os.urandom(size * 3 // 4)).decode())


# --- a child's Job projects every part ----------------------------------------------------------
def parents_volume(parts: dict[str, int] | None) -> list[dict[str, Any]]:
    from kubehatch_operator.model import StartAttempt

    start = StartAttempt(SPEC.steps[1], 1, "run-b-1-abcde", {"a": "run-a-1-x-output"})
    job = step_job(
        namespace="ns", workflow="wf", run="run", run_uid="uid-1", spec=SPEC, start=start,
        settings=StepSettings(), output_parts=parts,
    )  # fmt: skip
    volumes = job["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == "parents")["projected"]["sources"]


def test_a_split_parents_head_and_each_part_are_projected_under_their_own_paths() -> None:
    sources = parents_volume({"run-a-1-x-output": 3})
    assert [s["configMap"]["name"] for s in sources] == [
        "run-a-1-x-output",
        "run-a-1-x-output-1",
        "run-a-1-x-output-2",
        "run-a-1-x-output-3",
    ]
    assert all(s["configMap"]["optional"] for s in sources)
    assert sources[0]["configMap"]["items"] == [
        {"key": "output.json", "path": "a.json"},
        {"key": "output.json.gz", "path": "a.json.gz"},
        {"key": "output.parts.json", "path": "a.parts.json"},
    ]
    assert [s["configMap"]["items"] for s in sources[1:]] == [
        [{"key": "part", "path": f"a.part-{n}"}] for n in (1, 2, 3)
    ]


def test_a_parent_whose_part_count_is_unknown_gets_every_part_an_output_may_have() -> None:
    """After an operator restart (or a missed watch event) the head was never seen."""
    assert len(parents_volume(None)) == 1 + outputs.MAX_PARTS
    assert len(parents_volume({"other-output": 2})) == 1 + outputs.MAX_PARTS
    assert len(parents_volume({"run-a-1-x-output": 0})) == 1  # plain or compressed


def test_projected_paths_of_two_parents_never_meet() -> None:
    paths = [
        item["path"]
        for parent in ("a", "b")
        for source in parent_sources(parent, f"{parent}-output", None)
        for item in source["configMap"]["items"]
    ]
    assert len(paths) == len(set(paths)) == 2 * (3 + outputs.MAX_PARTS)


# --- the store learns the count from the head it watches ---------------------------------------
def test_the_output_watch_leaves_parts_out() -> None:
    assert SELECTOR.endswith(f",!{outputs.LABEL_OUTPUT_PART}")


def test_the_store_records_the_parts_a_head_announces_until_the_run_leaves() -> None:
    store = Store()
    store.observe_run(run_body("Running", rv="4"))
    store.observe_job(job_body({"active": 1}, rv="5"))
    head = {**output_meta(), "annotations": {outputs.ANNOTATION_OUTPUT_PARTS: "4"}}
    assert store.observe_output(head) == ("ns", "r1")
    assert store.attempts["r1-uid"]["r1-a-2"].state is AttemptState.SUCCEEDED
    assert store.output_parts["r1-uid"] == {"r1-a-2-output": 4}
    store.observe_run(run_body("Succeeded", rv="6"))
    store.observe_job(job_body({"succeeded": 1}, rv="7"))
    assert "r1-uid" not in store.output_parts


def test_a_plain_head_seen_after_the_jobs_success_still_records_zero_parts() -> None:
    store = Store()
    store.observe_run(run_body("Running", rv="4"))
    store.observe_job(job_body({"succeeded": 1}, rv="5"))
    assert store.observe_output(output_meta()) is None  # nothing new about the attempt
    assert store.output_parts["r1-uid"] == {"r1-a-2-output": 0}


def test_a_part_is_no_output_of_its_own() -> None:
    store = Store()
    store.observe_run(run_body("Running", rv="4"))
    store.observe_job(job_body({"active": 1}, rv="5"))
    assert store.observe_output(output_meta(name="r1-a-2-output-1")) is None
    assert store.attempts["r1-uid"]["r1-a-2"].state is AttemptState.ACTIVE
    assert not store.output_parts.get("r1-uid")


@pytest.mark.parametrize("value", ["", "x", "-1", "0", str(outputs.MAX_PARTS + 1)])
def test_an_announcement_out_of_range_reads_as_no_parts(value: str) -> None:
    assert outputs.parts_of({"annotations": {outputs.ANNOTATION_OUTPUT_PARTS: value}}) == 0


# --- Kube.read_output --------------------------------------------------------------------------
class FakeCore:
    """read_namespaced_config_map over the ConfigMaps a step pod would have created."""

    def __init__(self, made: list[dict[str, Any]]) -> None:
        self.configmaps = {m["metadata"]["name"]: m for m in made}
        self.reads: list[str] = []

    def read_namespaced_config_map(self, name: str, namespace: str) -> client.V1ConfigMap:
        self.reads.append(name)
        body = self.configmaps.get(name)
        if body is None:
            raise ApiException(status=404, reason="Not Found")
        return client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=name, annotations=body["metadata"].get("annotations")
            ),
            data=body.get("data"),
            binary_data=body.get("binaryData"),  # base64, as the client leaves it
        )


def read(made: list[dict[str, Any]], name: str = "r1-a-2-output") -> tuple[Any, list[str]]:
    kube = Kube(client.ApiClient())
    core = FakeCore(made)
    kube.core = core  # type: ignore[assignment]
    return asyncio.run(kube.read_output("ns", name)), core.reads


@pytest.mark.parametrize("size", [200, 300 * 1024, 990 * 1024])
def test_read_output_decodes_every_form_up_to_a_mib(size: int) -> None:
    text = random_json(size)
    made = outputs.configmaps(STEP, text)
    value, reads = read(made)
    assert value == json.loads(text)
    assert reads == [m["metadata"]["name"] for m in [made[-1], *made[:-1]]]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of 200 KiB: JSON compresses too well for a split output of at most 1 MiB."""
    monkeypatch.setattr(outputs, "PART_BYTES", 200 * 1024)


@pytest.mark.usefixtures("small_parts")
def test_read_output_reassembles_a_split_output_within_the_limit() -> None:
    text = random_json(1000 * 1024)
    made = outputs.configmaps(STEP, text)
    assert len(made) >= 4
    value, reads = read(made)
    assert value == json.loads(text)
    assert sorted(reads) == sorted(m["metadata"]["name"] for m in made)


def test_read_output_refuses_a_large_split_output_without_reading_its_parts() -> None:
    text = random_json(3 * 1024 * 1024)
    with pytest.raises(OutputTooLargeError) as caught:
        read(outputs.configmaps(STEP, text))
    error = caught.value
    assert error.size == len(text) and error.limit == outputs.MAX_OPERATOR_READ_BYTES
    assert str(error).startswith(
        f"the output in ConfigMap ns/r1-a-2-output is {len(text)} bytes of JSON, more than "
        "the operator (for conditions over outputs) reads (1048576 bytes, 1.0 MiB)"
    )


def test_read_output_refuses_a_compressed_output_past_a_mib() -> None:
    text = json.dumps(["row"] * (400 * 1024))  # compresses very well
    made = outputs.configmaps(STEP, text)
    assert len(made) == 1 and len(text) > outputs.MAX_OPERATOR_READ_BYTES
    with pytest.raises(OutputTooLargeError, match="unpacks to more JSON"):
        read(made)


@pytest.mark.usefixtures("small_parts")
def test_read_output_says_which_part_is_missing() -> None:
    made = outputs.configmaps(STEP, random_json(1000 * 1024))
    with pytest.raises(OutputCorruptError, match=rf"part 2 of {len(made) - 1} is missing"):
        read([m for m in made if m["metadata"]["name"] != "r1-a-2-output-2"])


def test_read_output_of_a_missing_head_is_the_apis_404() -> None:
    with pytest.raises(ApiException) as caught:
        read([])
    assert caught.value.status == 404


# --- the reconciler hands the count to the child's Job ------------------------------------------
def test_a_childs_job_projects_the_parts_its_parents_head_announced() -> None:
    from pathlib import Path

    import yaml

    from kubehatch_operator.reconciler import Reconciler
    from kubehatch_operator.settings import ObservabilitySettings, Settings
    from tests.unit.operator.fakekube import FakeKube
    from tests.unit.operator.test_reconcile_fixtures import _names, _object

    fixture = Path(__file__).parent / "fixtures" / "hand-over.yaml"
    case = yaml.safe_load(_names(fixture.read_text()))
    kube, store = FakeKube(), Store()
    store.observe_workflow(_object("Workflow", case["workflow"]))
    key = store.observe_run(kube.add_run(_object("WorkflowRun", case["run"])))
    (job,) = case["jobs"]
    kube.jobs[job["metadata"]["name"]] = job
    store.observe_job(job)
    head = wire.output_configmap_name(job["metadata"]["name"])
    store.observe_output(
        {
            **job["metadata"],
            "name": head,
            "annotations": {outputs.ANNOTATION_OUTPUT_PARTS: "3"},
        }
    )
    quiet = Settings(observability=ObservabilitySettings(post_events=False))
    reconciler = Reconciler(store, kube, quiet)  # type: ignore[arg-type]
    reconciler.queue.kick = lambda key: None  # type: ignore[method-assign]
    asyncio.run(reconciler.reconcile(key))
    children = [j for name, j in kube.jobs.items() if name != job["metadata"]["name"]]
    assert len(children) == 2
    for child in children:
        volumes = child["spec"]["template"]["spec"]["volumes"]
        sources = next(v for v in volumes if v["name"] == "parents")["projected"]["sources"]
        assert [s["configMap"]["name"] for s in sources] == [
            head,
            *(outputs.part_name(head, n) for n in (1, 2, 3)),
        ]
