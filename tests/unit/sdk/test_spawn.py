"""Child runs in the SDK: ctx.spawn's envelope, WorkflowJob(spawns=...), describe's listing."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from kubehatch import Context, Fn, Worker, WorkflowJob, workflow_manifests
from kubehatch.api import wire
from kubehatch.api.workflowrun import WorkflowRun
from kubehatch.cli.describe import describe
from kubehatch.errors import KubehatchError
from kubehatch.spawning import MAX_CHILDREN, is_spawn_request


def test_spawn_returns_the_envelope_the_step_returns_as_its_output() -> None:
    output = Context().spawn("child", {"i": 1})
    assert output == {
        "kubehatch.dev/spawn": {"runs": [{"workflow": "child", "input": {"i": 1}}], "single": True}
    }
    assert type(output) is dict and is_spawn_request(output)  # stored as any output
    assert json.loads(json.dumps(output)) == output


def test_spawn_many_keeps_the_order_and_the_keys() -> None:
    output = Context().spawn_many("child", [{"i": 0}, None, {"i": 2}], keys=["a", None, "c"])
    assert output[wire.SPAWN_KEY] == {
        "runs": [
            {"workflow": "child", "input": {"i": 0}, "key": "a"},
            {"workflow": "child", "input": {}},
            {"workflow": "child", "input": {"i": 2}, "key": "c"},
        ],
        "single": False,
    }
    assert Context().spawn_many("child", [])[wire.SPAWN_KEY]["runs"] == []


def test_inputs_may_be_models_and_dataclasses() -> None:
    @dataclasses.dataclass
    class Item:
        i: int

    output = Context().spawn_many("child", (Item(i) for i in range(2)))
    assert [r["input"] for r in output[wire.SPAWN_KEY]["runs"]] == [{"i": 0}, {"i": 1}]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.spawn("Not_A_Name"), "name a Workflow"),
        (lambda c: c.spawn("child", [1, 2]), "must be a JSON object"),
        (lambda c: c.spawn_many("child", {"i": 1}), "takes a list of inputs"),
        (lambda c: c.spawn("child", key="Bad Key"), "child key 'Bad Key'"),
        (lambda c: c.spawn("child", key="12"), "not only digits"),
        (lambda c: c.spawn_many("child", [{}, {}], keys=["a", "a"]), "given twice"),
        (lambda c: c.spawn_many("child", [{}, {}], keys=["a"]), "1 keys for 2 inputs"),
        (lambda c: c.spawn_many("child", [{}] * (MAX_CHILDREN + 1)), "at most 1000"),
    ],
)
def test_bad_requests_fail_in_the_step_saying_why(call: Any, message: str) -> None:
    with pytest.raises(KubehatchError, match=message):
        call(Context())


def _spawner(ctx: Context) -> Any:
    return ctx.spawn("child", {})


def test_workflow_job_spawns_renders_into_spec_spawns() -> None:
    worker = Worker("w", image="img:1")
    worker.register_workflow(
        WorkflowJob(name="parent", spawns=["child", "other"], steps=[Fn(_spawner)])
    )
    worker.register_workflow(WorkflowJob(name="solo", spawns="child", steps=[Fn(_spawner)]))
    worker.register_workflow(WorkflowJob(name="plain", steps=[Fn(_spawner)]))
    specs = {m["metadata"]["name"]: m["spec"] for m in workflow_manifests(worker)}
    assert specs["parent"]["spawns"] == ["child", "other"]
    assert specs["solo"]["spawns"] == ["child"]
    assert "spawns" not in specs["plain"]


def test_spawns_must_name_workflows() -> None:
    worker = Worker("w", image="img:1")
    worker.register_workflow(WorkflowJob(name="parent", spawns=["Bad Name"], steps=[Fn(_spawner)]))
    with pytest.raises(KubehatchError, match="spawns"):
        workflow_manifests(worker)


# --- kubehatch describe -------------------------------------------------------------------------
def _run(name: str, workflow: str, status: dict[str, Any], labels: dict[str, str]) -> WorkflowRun:
    return WorkflowRun.model_validate(
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"workflowRef": {"name": workflow}},
            "status": status,
        }
    )


def test_describe_lists_the_children_under_the_step_that_spawned_them() -> None:
    spec = {
        "image": "i:1", "service": "s", "spawns": ["child"],
        "steps": [{"name": "fan", "action": "fan"},
                  {"name": "sum", "action": "sum", "parents": ["fan"]}],
    }  # fmt: skip
    parent = _run(
        "p1",
        "parent",
        {
            "phase": "Running", "progress": "0/2", "workflowSpec": spec,
            "steps": {
                "fan": {"phase": "Running", "attempts": 1, "childRuns": 2,
                        "message": "waiting for 2 child runs (1 finished)"},
                "sum": {"phase": "Pending"},
            },
        },
        {},
    )  # fmt: skip
    kids = [
        _run(
            f"p1-fan-{i}-abcde",
            "child",
            {"phase": phase},
            {wire.LABEL_PARENT_RUN: "p1", wire.LABEL_PARENT_STEP: "fan"},
        )
        for i, phase in enumerate(["Succeeded", "Running"])
    ]
    lines = describe(parent, kids).splitlines()
    fan = next(i for i, line in enumerate(lines) if line.split()[1:2] == ["fan"])
    assert lines[fan + 1] == "      waiting for 2 child runs (1 finished)"
    assert lines[fan + 2] == "      child runs: 2 of 2"
    first, second = lines[fan + 3].split(), lines[fan + 4].split()
    assert first == ["✔", "p1-fan-0-abcde", "child", "Succeeded"]
    assert second == ["▶", "p1-fan-1-abcde", "child", "Running"]
    assert lines[fan + 5].split()[1] == "sum"  # nothing under a step that spawned nothing
    assert "child runs" not in describe(parent.model_copy(update={"status": None}), kids)


def test_describe_asks_for_children_only_when_a_step_spawned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubehatch.cli import build_parser
    from kubehatch.cli import describe as describe_cli

    asked: list[str] = []
    plain = _run("r1", "wf", {"phase": "Running", "steps": {"a": {"phase": "Running"}}}, {})

    class FakeClient:
        def get_run(self, name: str) -> WorkflowRun:
            return plain

        def list_children(self, name: str) -> list[WorkflowRun]:
            asked.append(name)
            return []

    monkeypatch.setattr(describe_cli, "client", lambda _args: FakeClient())
    assert describe_cli.run(build_parser().parse_args(["describe", "r1"])) == 0
    assert asked == []
    plain.status.steps["a"].child_runs = 1  # type: ignore[union-attr]
    describe_cli.run(build_parser().parse_args(["describe", "r1"]))
    assert asked == ["r1"]


def test_get_runs_shows_the_parent_of_child_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubehatch.cli import build_parser
    from kubehatch.cli import get as get_cli

    child = _run("p1-fan-0-abcde", "child", {"phase": "Running"}, {wire.LABEL_PARENT_RUN: "p1"})
    child.metadata["ownerReferences"] = [wire.owner_reference("WorkflowRun", "p1", "u1")]
    parent = _run("p1", "parent", {"phase": "Running"}, {})

    class FakeClient:
        def list_runs(self, *args: object, **kwargs: object) -> list[WorkflowRun]:
            return [parent, child]

    monkeypatch.setattr(get_cli, "client", lambda _args: FakeClient())
    get_cli.run(build_parser().parse_args(["get", "runs"]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == "PARENT"
    rows = {line.split()[0]: line.split()[-1] for line in lines[1:]}
    assert rows == {"p1": "-", "p1-fan-0-abcde": "p1"}
