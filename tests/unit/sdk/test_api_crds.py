"""The generated CRDs: up to date, structural, and their CEL rules doing their job."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from kubehatch.api import RESOURCES, WorkflowSpec
from kubehatch.api.crdgen import crd, crd_files, main, stale_files, write_crds
from kubehatch.api.workflow import MAX_PARENTS, MAX_STEPS

REGENERATE = "python -m kubehatch.api.crdgen crds charts/kubehatch/crds"


def test_checked_in_crds_are_up_to_date(repo_root: Path) -> None:
    stale = stale_files(repo_root / "crds")
    assert not stale, f"stale CRDs {stale}; regenerate with: {REGENERATE}"


def test_chart_copies_are_up_to_date_when_present(repo_root: Path) -> None:
    chart = repo_root / "charts" / "kubehatch" / "crds"
    if not any(chart.glob("*.yaml")):
        pytest.skip("the chart has no CRD copies yet")
    assert not stale_files(chart), f"regenerate with: {REGENERATE}"


def test_generator_writes_every_directory_and_check_mode_detects_drift(tmp_path: Path) -> None:
    first, second = tmp_path / "crds", tmp_path / "chart" / "crds"
    assert main([str(first), str(second)]) == 0
    assert sorted(p.name for p in second.iterdir()) == sorted(crd_files())
    assert main(["--check", str(first), str(second)]) == 0
    (second / "kubehatch.dev_workflows.yaml").write_text("# edited\n")
    assert main(["--check", str(first), str(second)]) == 1
    assert write_crds(tmp_path / "again") and not stale_files(tmp_path / "again")


def crds() -> dict[str, dict[str, Any]]:
    return {resource.info.kind: crd(resource) for resource in RESOURCES}


def schema_of(kind: str) -> dict[str, Any]:
    return crds()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


ALLOWED = {
    "type", "description", "enum", "format", "pattern", "minLength", "maxLength", "minimum",
    "maximum", "minItems", "maxItems", "required", "default", "properties", "items",
    "additionalProperties", "anyOf", "x-kubernetes-validations", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
}  # fmt: skip


@pytest.mark.parametrize("kind", ["Workflow", "WorkflowRun", "WorkflowEvent", "WorkflowApproval"])
def test_schemas_are_structural(kind: str) -> None:
    for path, node in walk(schema_of(kind)):
        assert set(node) <= ALLOWED, f"{path}: unsupported keys {set(node) - ALLOWED}"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), f"{path}: anyOf only for int-or-string"
        else:
            assert "type" in node, f"{path}: no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if "default" in node:
            assert isinstance(node["default"], str | int | bool), f"{path}: non-scalar default"
        for required in node.get("required", []):
            assert required in node["properties"], f"{path}: requires unknown {required}"
        for key in node.get("x-kubernetes-list-map-keys", []):
            assert key in node["items"]["required"], f"{path}: map key {key} must be required"
        pattern = node.get("pattern", "")
        assert not re.search(r"\(\?[=!<]", pattern), f"{path}: look-arounds are not RE2"


@pytest.mark.parametrize("kind", ["Workflow", "WorkflowRun", "WorkflowEvent", "WorkflowApproval"])
def test_every_field_is_documented_for_kubectl_explain(kind: str) -> None:
    schema = schema_of(kind)
    for part in ("spec", "status"):
        for path, node in walk(schema["properties"][part], part):
            if not path.endswith(("[]", "{}")):
                assert node.get("description"), f"{kind} {path} has no description"


def test_names_columns_and_subresources() -> None:
    by_kind = crds()
    expected = {
        "Workflow": "wf",
        "WorkflowRun": "wfr",
        "WorkflowEvent": "wfe",
        "WorkflowApproval": "wfa",
        "WorkerPool": "wp",
        "WorkerTask": "wt",
    }
    for kind, short in expected.items():
        spec = by_kind[kind]["spec"]
        assert spec["group"] == "kubehatch.dev"
        assert spec["names"]["shortNames"] == [short]
        assert spec["names"]["categories"] == ["kubehatch"]
        (version,) = spec["versions"]
        assert version["name"] == "v1alpha1" and version["storage"] and version["served"]
        scale = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
        assert version["subresources"] == (
            {"status": {}, "scale": scale} if kind == "WorkerPool" else {"status": {}}
        )
    columns = {
        kind: [c["name"] for c in crd_["spec"]["versions"][0]["additionalPrinterColumns"]]
        for kind, crd_ in by_kind.items()
    }
    assert columns == {
        "Workflow": ["Service", "Suspended", "Ready", "Next", "Age"],
        "WorkflowRun": [
            "Workflow",
            "Phase",
            "Progress",
            "Duration",
            "Started",
            "Finished",
            "Trigger",
            "Age",
        ],
        "WorkflowEvent": ["Key", "Runs", "Handled", "Age"],
        "WorkflowApproval": ["Run", "Step", "Approved", "Approver", "Comment", "Age"],
        "WorkerPool": ["Replicas", "Ready", "Slots", "Queued", "Running", "Image", "Age"],
        "WorkerTask": ["Pool", "Phase", "Worker", "Reason", "Age"],
    }


def test_free_form_objects_keep_unknown_fields() -> None:
    run = schema_of("WorkflowRun")["properties"]["spec"]["properties"]["input"]
    assert run == {
        "type": "object",
        "description": "Input of the run, any JSON object.",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    payload = schema_of("WorkflowEvent")["properties"]["spec"]["properties"]["payload"]
    assert payload["x-kubernetes-preserve-unknown-fields"] is True


def test_run_steps_are_a_map_and_conditions_merge_by_type() -> None:
    status = schema_of("WorkflowRun")["properties"]["status"]["properties"]
    assert status["steps"]["type"] == "object"
    assert "phase" in status["steps"]["additionalProperties"]["properties"]
    assert status["conditions"]["x-kubernetes-list-type"] == "map"


def test_generated_file_is_the_dict_as_yaml() -> None:
    for name, text in crd_files().items():
        assert text.startswith("# Generated by")
        document = yaml.safe_load(text)
        assert name == f"kubehatch.dev_{document['spec']['names']['plural']}.yaml"


# --- CEL rules, evaluated with cel-python against the same objects pydantic checks ---

ENV = celpy.Environment()


def rules(kind: str, *path: str) -> list[dict[str, str]]:
    node = schema_of(kind)["properties"]
    for name in path[:-1]:
        node = node[name]["properties"]
    return node[path[-1]]["x-kubernetes-validations"]


def failing(rule_set: list[dict[str, str]], value: Any, old: Any = None) -> list[str]:
    """Messages of the rules ``value`` breaks (transition rules only when ``old`` is given)."""
    messages = []
    for rule in rule_set:
        if "oldSelf" in rule["rule"] and old is None:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if old is not None:
            activation["oldSelf"] = celpy.json_to_cel(old)
        result = ENV.program(ENV.compile(rule["rule"])).evaluate(activation)
        if not bool(result):
            messages.append(rule["message"])
    return messages


def wf(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"service": "svc", "image": "img", "steps": list(steps), **extra}


def st(name: str, *parents: str, **extra: Any) -> dict[str, Any]:
    data = {"name": name, "action": name, **extra}
    if parents:
        data["parents"] = list(parents)
    return data


SPEC_CASES = [
    (wf(st("a"), st("b", "a")), []),
    (wf(st("a"), st("a")), ["step names must be unique within a workflow"]),
    (wf(st("a"), st("b", "c")), ["every parent must name another step of this workflow"]),
    (wf(st("a", "a")), ["a step cannot be its own parent"]),
    (
        {"image": "img", "steps": [st("a")]},
        ["set spec.service or write every step's action as 'service:action'"],
    ),
    ({"image": "img", "steps": [{"name": "a", "action": "svc:a"}]}, []),
    ({"service": "svc", "steps": [st("a")]}, ["set spec.image or an image on every step"]),
    ({"service": "svc", "steps": [st("a", image="own")]}, []),
]


@pytest.mark.parametrize(("spec", "expected"), SPEC_CASES)
def test_workflow_cel_rules_agree_with_pydantic(spec: dict[str, Any], expected: list[str]) -> None:
    assert failing(rules("Workflow", "spec"), spec) == expected
    valid = not expected
    try:
        WorkflowSpec.model_validate(spec)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == valid


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ({"expression": "input.a", "maxRuns": 2}, []),
        ({"action": "svc:key"}, []),
        ({}, ["set exactly one of expression (CEL over the input) or action (a key function)"]),
        (
            {"expression": "input.a", "action": "svc:key"},
            ["set exactly one of expression (CEL over the input) or action (a key function)"],
        ),
        ({"action": "svc:key", "maxRuns": 0}, ["maxRuns must be at least 1"]),
    ],
)
def test_concurrency_cel_rules(limit: dict[str, Any], expected: list[str]) -> None:
    assert failing(rules("Workflow", "spec", "concurrency"), limit) == expected


def test_run_transition_rules() -> None:
    run_rules = rules("WorkflowRun", "spec")
    old = {"workflowRef": {"name": "wf"}, "cancel": False}
    assert failing(run_rules, {"workflowRef": {"name": "wf"}, "cancel": True}, old) == []
    assert failing(run_rules, {"workflowRef": {"name": "other"}, "cancel": False}, old) == [
        "workflowRef cannot change; create a new WorkflowRun instead"
    ]
    cancelled = {"workflowRef": {"name": "wf"}, "cancel": True}
    assert failing(run_rules, old, cancelled) == [
        "a cancelled run cannot be resumed; create a new WorkflowRun instead"
    ]


def test_cel_rules_are_bounded_for_the_cost_estimator() -> None:
    steps = schema_of("Workflow")["properties"]["spec"]["properties"]["steps"]
    assert steps["maxItems"] == MAX_STEPS
    assert steps["items"]["properties"]["parents"]["maxItems"] == MAX_PARENTS
    assert steps["items"]["properties"]["name"]["maxLength"] == 63
