"""Typed inputs: the model's JSON Schema in the spec, and checks at submit with field paths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from typing_extensions import TypedDict

from kubehatch import Context, Event, Fn, Worker, WorkflowJob
from kubehatch.api.inputschema import (
    InvalidInputError,
    check_input,
    input_problems,
    input_schema_of,
)
from kubehatch.api.workflow import WorkflowSpec
from kubehatch.client import Client
from kubehatch.testing import run_workflow
from tests.unit.sdk.test_client_errors import CUSTOM, FakeCluster, cluster  # noqa: F401


class Address(BaseModel):
    city: str
    zip: int


class Signup(BaseModel):
    username: str
    age: int | None = None
    tags: list[str] = []
    address: Address


def test_the_schema_is_pydantics_and_goes_into_the_spec() -> None:
    schema = input_schema_of(Signup)
    assert schema == Signup.model_json_schema()
    worker = Worker("w", image="img:1")
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(_noop)], input_validator=Signup))
    spec = worker.get_workflow("wf").spec
    assert spec is not None and spec.input_schema == schema
    assert WorkflowSpec.model_validate(spec.model_dump(by_alias=True)).input_schema == schema


def _noop(ctx: Context) -> None: ...


@dataclass
class Point:
    x: int


class Named(TypedDict):
    name: str


@pytest.mark.parametrize("model", [Point, Named])
def test_dataclasses_and_typed_dicts_describe_objects_too(model: Any) -> None:
    assert input_schema_of(model)["type"] == "object"


@pytest.mark.parametrize("model", [int, list[str]])
def test_types_that_are_not_objects_are_refused(model: Any) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        input_schema_of(model)


@pytest.mark.parametrize(
    ("value", "problems"),
    [
        ({"username": "ada", "address": {"city": "L", "zip": 1}}, None),
        ({"address": {"city": "L", "zip": 1}}, "username: field required"),
        (
            {"username": "ada", "age": "x", "address": {"city": "L"}},
            "address.zip: field required; age: 'x' is not of type 'integer'",
        ),
        (
            {"username": "ada", "tags": ["a", 2], "address": {"city": "L", "zip": 1}},
            "tags[1]: 2 is not of type 'string'",
        ),
        ([1], "(input): [1] is not of type 'object'"),
    ],
)
def test_problems_name_each_field_by_its_path(value: Any, problems: str | None) -> None:
    assert input_problems(input_schema_of(Signup), value) == problems


def test_no_schema_takes_anything_and_many_problems_are_counted() -> None:
    assert input_problems(None, [1]) is None
    schema = {"type": "object", "properties": {f"f{i}": {"type": "integer"} for i in range(15)}}
    text = input_problems(schema, {f"f{i}": "x" for i in range(15)})
    assert text is not None and text.endswith("; and 5 more")


def test_check_input_raises_naming_the_workflow() -> None:
    with pytest.raises(InvalidInputError, match="the input of workflow 'wf' is invalid: username"):
        check_input("wf", input_schema_of(Signup), {"address": {"city": "L", "zip": 1}})


def test_an_invalid_schema_is_refused_by_the_spec() -> None:
    data = {"image": "i", "service": "s", "steps": [{"name": "a", "action": "a"}]}
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        WorkflowSpec.model_validate({**data, "inputSchema": {"type": "nonsense"}})


def test_the_local_runner_refuses_a_bad_input_as_the_operator_would() -> None:
    worker = Worker("w", image="img:1")
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(_noop)], input_validator=Signup))
    with pytest.raises(InvalidInputError, match="address: field required"):
        run_workflow(worker, "wf", {"username": "ada"})


# --- at submit: Client.run, schedules, events ------------------------------------------------

SCHEMA = input_schema_of(Signup)
BAD = {"username": "ada", "age": "x", "address": {"city": "L", "zip": 1}}
GOOD = {"username": "ada", "address": {"city": "L", "zip": 1}}


def _workflow(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"inputSchema": SCHEMA, **spec}}


def test_a_run_whose_input_does_not_fit_is_refused_before_it_is_created(
    cluster: FakeCluster,  # noqa: F811
) -> None:
    cluster.objects["workflows", "wf"] = _workflow("wf")
    api: Client = cluster.client()
    with pytest.raises(InvalidInputError, match="age: 'x' is not of type 'integer'"):
        api.run("wf", BAD)
    assert cluster.writes() == []
    assert api.run("wf", Signup.model_validate(GOOD), name="r1") == "r1"
    assert cluster.objects["workflowruns", "r1"]["spec"]["input"]["username"] == "ada"


def test_a_scheduled_run_is_checked_when_its_workflow_exists(cluster: FakeCluster) -> None:  # noqa: F811
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(hours=1)
    api = cluster.client()
    assert api.run("later", BAD, name="r0", scheduled_at=later) == "r0"  # no Workflow yet
    cluster.objects["workflows", "wf"] = _workflow("wf")
    with pytest.raises(InvalidInputError):
        api.run("wf", BAD, scheduled_at=later)


def test_an_event_is_refused_when_a_workflow_it_starts_would_refuse_its_payload(
    cluster: FakeCluster,  # noqa: F811
) -> None:
    cluster.objects["workflows", "a"] = _workflow("a", triggers={"events": ["user:*"]})
    cluster.objects["workflows", "b"] = _workflow("b", triggers={"events": ["user:created"]})
    cluster.objects["workflows", "off"] = _workflow(
        "off", triggers={"events": ["user:created"]}, suspend=True, inputSchema={"type": "array"}
    )
    cluster.objects["workflows", "other"] = _workflow("other", triggers={"events": ["x"]})
    api = cluster.client()
    with pytest.raises(InvalidInputError) as caught:
        api.event.push("user:created", BAD)
    text = str(caught.value)
    assert text.startswith("event 'user:created' was not pushed: its payload is the input of")
    assert "a: age: 'x'" in text and "b: age: 'x'" in text and "off" not in text
    assert cluster.writes() == []
    assert api.event.push("user:created", GOOD) == "event-x7k2p"
    del cluster.objects["workflowevents", "event-x7k2p"]
    assert api.event.push("nobody:listens", BAD)  # no Workflow starts: nothing to check


def test_an_event_is_pushed_when_rbac_hides_the_workflows(cluster: FakeCluster) -> None:  # noqa: F811
    cluster.forbidden.add(("list", "workflows"))
    assert cluster.client().event.push("user:created", BAD) == "event-x7k2p"


def test_a_workflow_rendered_with_an_event_trigger_carries_its_schema() -> None:
    worker = Worker("w", image="img:1")
    wf = worker.workflow("typed", on=Event("user:created"), input_validator=Signup)
    wf.step(_noop)
    spec = worker.get_workflow("typed").spec
    assert spec is not None and spec.input_schema == SCHEMA and spec.triggers.events
    _ = CUSTOM
