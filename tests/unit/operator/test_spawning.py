"""Child runs' I/O (spawning.py): what a pass reads, what it writes, and in which order."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from kubehatch.api import wire
from kubehatch.api.workflowrun import StepPhase
from kubehatch_operator.children import child_names, results_configmap_name
from kubehatch_operator.decisions import decide
from kubehatch_operator.entries import RunEntry
from kubehatch_operator.model import Attempt, AttemptState, ChildPhase
from kubehatch_operator.reading import Pass
from kubehatch_operator.spawning import Spawns
from kubehatch_operator.store import Store
from tests.unit.operator.test_children import T0, T1, spec

NS = "ns"
JOB = wire.job_name("parent", "u-1", "fan", 1)


class Kube:
    def __init__(self, output: Any) -> None:
        self.calls: list[tuple[str, str]] = []
        self.outputs: dict[str, Any] = {wire.output_configmap_name(JOB): output}
        self.runs: dict[str, dict[str, Any]] = {}
        self.configmaps: dict[str, dict[str, Any]] = {}

    async def patch_run(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        assert patch == {"spec": {"cancel": True}}
        self.calls.append(("cancel", name))

    async def read_output(self, namespace: str, configmap: str) -> Any:
        self.calls.append(("read_output", configmap))
        return self.outputs.get(configmap)

    async def read_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("read_run", name))
        return self.runs.get(name)

    async def create_run(self, body: dict[str, Any]) -> dict[str, Any] | None:
        name = body["metadata"]["name"]
        self.calls.append(("create_run", name))
        if name in self.runs:
            return None
        self.runs[name] = body
        return body

    async def create_configmap(self, body: dict[str, Any]) -> bool:
        self.calls.append(("create_configmap", body["metadata"]["name"]))
        self.configmaps[body["metadata"]["name"]] = body
        return True


def parent_body(status: dict[str, Any], **run_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": wire.API_VERSION, "kind": "WorkflowRun",
        "metadata": {"name": "parent", "namespace": NS, "uid": "u-1", "resourceVersion": "5"},
        "spec": {"workflowRef": {"name": "wf"}, **run_spec},
        "status": status,
    }  # fmt: skip


def started_status() -> dict[str, Any]:
    body = parent_body({}, priority=2, additionalMetadata={"tier": "gold"})
    entry = RunEntry.parse(body)
    assert entry.run is not None
    return decide(entry.run, spec(), [], T0).status.to_dict()


def fan_attempt() -> Attempt:
    return Attempt("fan", 1, JOB, AttemptState.SUCCEEDED, T0, T0)


def a_pass(status: dict[str, Any]) -> Pass:
    entry = RunEntry.parse(parent_body(status, priority=2, additionalMetadata={"tier": "gold"}))
    assert entry.run is not None
    return Pass(entry, entry.run, None, [fan_attempt()])


def envelope(n: int) -> dict[str, Any]:
    runs = [{"workflow": "child", "input": {"i": i}} for i in range(n)]
    return {wire.SPAWN_KEY: {"runs": runs, "single": False}}


def child_body(name: str, phase: str | None, uid: str = "u-1", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name, "namespace": NS, "uid": f"c-{name}", "resourceVersion": "9",
            "labels": {wire.LABEL_PARENT_RUN: "parent"},
            "ownerReferences": [wire.owner_reference("WorkflowRun", "parent", uid)],
        },
        "spec": {"workflowRef": {"name": "child"}},
        "status": {"phase": phase, **status} if phase else {},
    }  # fmt: skip


def test_a_first_pass_reads_the_request_once_then_creates_the_children_before_the_status() -> None:
    store, kube = Store(), Kube(envelope(2))
    spawns = Spawns(store, kube, lambda key: None)  # type: ignore[arg-type]
    read = asyncio.run(spawns.read(a_pass(started_status())))
    spawned = next(a for a in read.attempts if a.step == "fan").spawn
    assert spawned is not None and spawned.request is not None
    assert [c.phase for c in spawned.children] == [ChildPhase.ABSENT] * 2
    # Not counted yet: no child is looked for in the API (the creates find any, by 409).
    assert kube.calls == [("read_output", wire.output_configmap_name(JOB))]
    decision = decide(read.run, None, read.attempts, T1)
    asyncio.run(spawns.apply(read, decision))
    names = child_names(read.run, "fan", spawned.request)
    assert kube.calls[1:] == [("create_run", n) for n in names]
    child = kube.runs[names[1]]
    assert child["spec"]["input"] == {"i": 1} and child["spec"]["priority"] == 2
    assert child["spec"]["additionalMetadata"] == {"tier": "gold"}
    assert child["spec"]["triggeredBy"] == {"type": "Parent", "source": "parent/fan"}
    assert child["metadata"]["labels"] == {
        wire.LABEL_WORKFLOW: "child", wire.LABEL_PARENT_RUN: "parent",
        wire.LABEL_PARENT_STEP: "fan", wire.LABEL_CHILD_INDEX: "1",
    }  # fmt: skip
    [owner] = child["metadata"]["ownerReferences"]
    assert (owner["name"], owner["uid"], owner["controller"]) == ("parent", "u-1", True)
    # A second pass reads the request from memory.
    again = asyncio.run(spawns.read(a_pass(decision.status.to_dict())))
    assert ("read_output", wire.output_configmap_name(JOB)) not in kube.calls[3:]
    assert again.attempts[0].spawn == dataclasses.replace(
        spawned,
        children=tuple(dataclasses.replace(c, phase=ChildPhase.ACTIVE) for c in spawned.children),
    )


def test_results_are_read_once_all_succeeded_and_stored_before_the_status() -> None:
    store, kube = Store(), Kube(envelope(2))
    spawns = Spawns(store, kube, lambda key: None)  # type: ignore[arg-type]
    first = asyncio.run(spawns.read(a_pass(started_status())))
    waiting = decide(first.run, None, first.attempts, T1)
    asyncio.run(spawns.apply(first, waiting))
    spawned = first.attempts[0].spawn
    assert spawned is not None and spawned.request is not None
    names = child_names(first.run, "fan", spawned.request)
    child_spec = {"image": "i", "service": "s", "steps": [{"name": "value", "action": "value"}]}
    for i, name in enumerate(names):
        kube.runs[name] = child_body(
            name, "Succeeded", workflowSpec=child_spec,
            steps={"value": {"phase": "Succeeded", "outputConfigMap": f"{name}-out"}},
        )  # fmt: skip
        kube.outputs[f"{name}-out"] = {"value": i}
    read = asyncio.run(spawns.read(a_pass(waiting.status.to_dict())))
    decision = decide(read.run, None, read.attempts, T1)
    assert decision.status.steps["fan"].phase is StepPhase.SUCCEEDED
    asyncio.run(spawns.apply(read, decision))
    stored = kube.configmaps[results_configmap_name(JOB)]
    assert json.loads(stored["data"][wire.OUTPUT_KEY]) == [{"value": 0}, {"value": 1}]
    assert stored["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_a_foreign_run_of_a_childs_name_fails_the_step_and_the_run_moves_on() -> None:
    store, kube = Store(), Kube(envelope(1))
    kicked: list[Any] = []
    spawns = Spawns(store, kube, kicked.append)
    read = asyncio.run(spawns.read(a_pass(started_status())))
    spawned = read.attempts[0].spawn
    assert spawned is not None and spawned.request is not None
    [name] = child_names(read.run, "fan", spawned.request)
    kube.runs[name] = child_body(name, None, uid="someone-else")
    decision = asyncio.run(spawns.apply(read, decide(read.run, None, read.attempts, T1)))
    assert decision.status.steps["fan"].phase is StepPhase.FAILED
    assert "did not spawn" in (decision.status.steps["fan"].message or "")
    assert kicked == [(NS, "parent")]


def test_a_finished_child_wakes_its_parent() -> None:
    store, kube = Store(), Kube(None)
    kicked: list[Any] = []
    spawns = Spawns(store, kube, kicked.append)
    store.observe_run(parent_body(started_status()))
    spawns.wake_parent(child_body("c1", "Succeeded"))
    spawns.wake_parent(child_body("c2", "Succeeded", uid="another-parent"))  # not this one
    spawns.wake_parent({"metadata": {"name": "plain", "namespace": NS}})
    assert kicked == [(NS, "parent")]
