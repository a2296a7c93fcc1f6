import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pydantic_core
import pytest
from pydantic import BaseModel, Field

from kubehatch import OutputError, to_jsonable
from kubehatch._serialization import parse_as
from kubehatch.errors import InputError


class Model(BaseModel):
    user_id: str = Field(alias="userId")
    at: datetime


@dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({"a": [1, "b"]}, {"a": [1, "b"]}),
        (Point(1, 2), {"x": 1, "y": 2}),
        ("text", "text"),
        ({"when": datetime(2030, 1, 1, tzinfo=UTC)}, {"when": "2030-01-01T00:00:00Z"}),
        ({"points": [Point(0, 1)]}, {"points": [{"x": 0, "y": 1}]}),
    ],
)
def test_to_jsonable(value: Any, expected: Any) -> None:
    assert to_jsonable(value) == expected


class Colour(StrEnum):
    RED = "red"


def _deep(levels: int) -> Any:
    value: Any = {"leaf": [1.5]}
    for _ in range(levels):
        value = {"k": [value]}
    return value


@pytest.mark.parametrize(
    "value",
    [
        None, True, 0, -1, 2**100, 1.5, -0.0, math.inf, math.nan, "", "text", "\ud800 lone",
        [], {}, [1, "a", None, [True, {"b": 2.5}]], {"a": {"b": {"c": []}}},
        _deep(30), _deep(100),
        # not plain: left to pydantic_core
        (1, 2), {1: "int key"}, {"s": {1, 2}}, [b"bytes"], Colour.RED, {"c": Colour.RED},
        {"when": datetime(2030, 1, 1, tzinfo=UTC)}, [Model(userId="u", at=datetime(2030, 1, 1))],
    ],
)  # fmt: skip
def test_json_data_converts_as_pydantic_core_converts_it(value: Any) -> None:
    """Plain JSON data is copied without loading pydantic; the result is pydantic_core's."""
    converted = to_jsonable(value)
    expected = pydantic_core.to_jsonable_python(value, by_alias=True)
    assert repr(converted) == repr(expected)  # repr: nan != nan, and types show
    if isinstance(value, list | dict):
        assert converted is not value


def test_a_value_containing_itself_is_refused_as_before() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        to_jsonable(loop)


def test_models_dump_by_alias_and_parse_back() -> None:
    model = Model(userId="u1", at=datetime(2030, 1, 1, tzinfo=UTC))
    data = to_jsonable(model)
    assert data == {"userId": "u1", "at": "2030-01-01T00:00:00Z"}
    assert parse_as(data, Model, what="x") == model


def test_unserialisable_values_say_what_to_return() -> None:
    with pytest.raises(OutputError, match="output of step 'a' of type object cannot be stored"):
        to_jsonable(object(), what="output of step 'a'")


def test_parse_as_without_a_model_returns_the_data() -> None:
    data = {"a": 1}
    assert parse_as(data, None, what="x") is data


def test_parse_as_errors_name_the_value_and_the_model() -> None:
    with pytest.raises(InputError, match="the thing does not match Point"):
        parse_as({"x": "nope"}, Point, what="the thing")
