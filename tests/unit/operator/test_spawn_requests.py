"""Which outputs the operator reads for spawn requests: those marked by the step pod.

The step pod annotates the output of a spawn request; the output watch (metadata only)
records the mark in the store, so a pass reads the output of a succeeded attempt only
when it is marked, or when the watch did not see it and its Workflow has ``spawns``. An
output too large to read is no spawn request (the step succeeds), unless it is marked; a
marked spawn request in a Workflow without ``spawns`` fails its step (an unmarked or
unseen output there is never read: plain outputs cost nothing).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from kubehatch import Context
from kubehatch._steprunner import store_output
from kubehatch.api import outputs, spawns, stepenv, wire
from kubehatch.api.workflowrun import StepPhase
from kubehatch.errors import OutputTooLargeError
from kubehatch_operator.decisions import decide
from kubehatch_operator.entries import RunEntry
from kubehatch_operator.model import Attempt, AttemptState
from kubehatch_operator.reading import Pass
from kubehatch_operator.spawning import Spawns
from kubehatch_operator.store import Store
from tests.unit.operator.test_children import T0, T1, spec
from tests.unit.operator.test_spawning import JOB, NS, Kube, envelope, parent_body
from tests.unit.sdk.test_incluster import FakeApi, api, plain_http
from tests.unit.sdk.test_outputs import STEP, random_json

__all__ = ["api"]  # the fixture

OUTPUT = wire.output_configmap_name(JOB)


# --- the step pod marks it ----------------------------------------------------------------------
@pytest.mark.parametrize("size", [10, 300 * 1024, 3 * 1024 * 1024])
def test_the_head_of_a_spawn_requests_output_is_marked_whatever_its_form(size: int) -> None:
    text = random_json(size)
    plain, marked = outputs.configmaps(STEP, text), outputs.configmaps(STEP, text, spawn=True)
    assert [m["metadata"].get("annotations", {}) for m in plain[:-1]] == [
        m["metadata"].get("annotations", {}) for m in marked[:-1]
    ]  # parts are not marked
    assert not spawns.marked(plain[-1]["metadata"]) and spawns.marked(marked[-1]["metadata"])
    assert [m.get("data") for m in plain] == [m.get("data") for m in marked]
    assert [m.get("binaryData") for m in plain] == [m.get("binaryData") for m in marked]
    if size == 10:
        assert plain == [stepenv.output_configmap(STEP, text)]  # a plain output: as it always was
        assert marked[0]["data"] == plain[0]["data"]


def test_the_step_pod_marks_only_spawn_requests(api: FakeApi) -> None:
    request = Context().spawn("child", {"i": 1})
    text = '{"value":1}'
    store_output(STEP, text, server=api.server, connect=plain_http)
    store_output(STEP, text, spawn=spawns.is_spawn_request(request), server=api.server,
                 connect=plain_http)  # fmt: skip
    plain, marked = (json.loads(r["body"])["metadata"] for r in api.requests)
    assert not spawns.marked(plain) and spawns.marked(marked)


# --- the store records the mark -------------------------------------------------------------------
def output_meta(marked: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": OUTPUT,
        "namespace": NS,
        "ownerReferences": [wire.owner_reference("WorkflowRun", "parent", "u-1", controller=False)],
    }
    if marked:
        meta["annotations"] = {spawns.ANNOTATION_SPAWN_REQUEST: "true"}
    return meta


def a_store(seen: bool | None) -> Store:
    """A store that knows the fan attempt's Job and saw its output marked (True), not
    marked (False), or did not see it (None)."""
    store = Store()
    store.observe_run(parent_body(status()))
    store.attempts["u-1"][JOB] = Attempt("fan", 1, JOB, AttemptState.ACTIVE, T0)
    if seen is not None:
        store.observe_output(output_meta(seen))
    return store


def test_the_store_says_marked_not_marked_or_not_seen() -> None:
    assert a_store(True).spawn_request("u-1", OUTPUT) is True
    assert a_store(False).spawn_request("u-1", OUTPUT) is False
    assert a_store(None).spawn_request("u-1", OUTPUT) is None
    store = a_store(True)
    store.attempts["u-1"].clear()  # its pods are gone: the run leaves with its marks
    store.forget_run((NS, "parent"))
    assert store.spawn_request("u-1", OUTPUT) is None and "u-1" not in store.spawn_outputs


# --- a pass reads what is marked ---------------------------------------------------------------
def status(spawns_: list[str] | None = None) -> dict[str, Any]:
    entry = RunEntry.parse(parent_body({}))
    assert entry.run is not None
    return decide(entry.run, spec(spawns_), [], T0).status.to_dict()


def step_after(kube: Kube, store: Store, spawns_: list[str] | None = None) -> Any:
    """The fan step's status after a pass, its attempt succeeded with the kube's output."""
    entry = RunEntry.parse(parent_body(status(spawns_)))
    assert entry.run is not None
    attempt = Attempt("fan", 1, JOB, AttemptState.SUCCEEDED, T0, T0)
    reader = Spawns(store, kube, lambda key: None)  # type: ignore[arg-type]
    read = asyncio.run(reader.read(Pass(entry, entry.run, None, [attempt])))
    return decide(read.run, None, read.attempts, T1).status.steps["fan"]


def reads(kube: Kube) -> list[tuple[str, str]]:
    return [call for call in kube.calls if call[0] == "read_output"]


def test_a_seen_output_without_the_mark_is_not_read() -> None:
    kube = Kube(envelope(2))  # what an older step image wrote: taken as a plain output
    step = step_after(kube, a_store(False))
    assert step.phase is StepPhase.SUCCEEDED and reads(kube) == []


@pytest.mark.parametrize("seen", [True, None])
def test_a_marked_or_unseen_output_is_read_once(seen: bool | None) -> None:
    kube = Kube(envelope(2))
    step = step_after(kube, a_store(seen))
    assert (
        step.phase is StepPhase.RUNNING and step.message == "waiting for 2 child runs (0 finished)"
    )
    assert reads(kube) == [("read_output", OUTPUT)]


class TooLarge(Kube):
    async def read_output(self, namespace: str, configmap: str) -> Any:
        self.calls.append(("read_output", configmap))
        raise OutputTooLargeError(
            f"the output in ConfigMap {namespace}/{configmap} is 2000000 bytes of JSON, more "
            "than the operator reads",
            size=2_000_000,
            limit=outputs.MAX_OPERATOR_READ_BYTES,
        )


def test_an_unseen_output_too_large_to_read_is_no_request_and_the_step_succeeds() -> None:
    kube = TooLarge(None)
    step = step_after(kube, a_store(None))
    assert step.phase is StepPhase.SUCCEEDED and step.output_config_map == OUTPUT
    assert len(reads(kube)) == 1


def test_a_marked_output_too_large_to_read_fails_the_step_saying_why() -> None:
    step = step_after(TooLarge(None), a_store(True))
    assert step.phase is StepPhase.FAILED
    assert step.message.startswith("its spawn request is invalid: the output in ConfigMap")
    assert "2000000 bytes of JSON" in step.message


def test_a_spawn_request_in_a_workflow_without_spawns_fails_the_step() -> None:
    kube = Kube(envelope(1))
    step = step_after(kube, a_store(True), [])
    assert step.phase is StepPhase.FAILED
    assert step.message == (
        "it may not spawn workflow 'child': its Workflow's spec.spawns lists nothing; add "
        "'child' to spec.spawns (WorkflowJob(spawns=[...]) in Python)"
    )
    assert not [c for c in kube.calls if c[0] in ("read_run", "create_run")]


def test_an_empty_spawn_many_in_a_workflow_without_spawns_fails_too() -> None:
    step = step_after(Kube(envelope(0)), a_store(True), [])
    assert step.phase is StepPhase.FAILED
    assert step.message.startswith("it returned a spawn request, but its Workflow's spec.spawns")


@pytest.mark.parametrize("seen", [False, None])
def test_outputs_in_a_workflow_without_spawns_are_read_only_when_marked(seen: bool | None) -> None:
    kube = Kube(envelope(1))  # unmarked, or missed by the watch: a plain output, not read
    step = step_after(kube, a_store(seen), [])
    assert step.phase is StepPhase.SUCCEEDED and kube.calls == []
