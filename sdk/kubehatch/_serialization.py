"""Step data in and out: outputs become JSON, inputs are parsed into the caller's model.

Outputs cross process boundaries (a ConfigMap between step pods), so they are turned
into plain JSON values as soon as a step returns: a value that cannot be stored fails
the step that produced it, not the child that would read it later.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, overload

import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

from kubehatch.errors import InputError, OutputError

T = TypeVar("T")

JSONValue = None | bool | int | float | str | list[Any] | dict[str, Any]


def to_jsonable(value: Any, *, what: str = "value") -> JSONValue:
    """A pydantic model, dataclass, dict, list or scalar as plain JSON data.

    Models dump by alias, so the stored output matches the model's JSON form and
    parses back into it. ``what`` names the value in the error (e.g. "output of step
    'load'") raised when something cannot be represented, such as an open file.
    """
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    data: JSONValue  # pydantic returns Any: plain JSON data, by the mode asked for
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = TypeAdapter(type(value)).dump_python(value, mode="json", by_alias=True)
        return data
    try:
        data = pydantic_core.to_jsonable_python(value, by_alias=True)
    except pydantic_core.PydanticSerializationError as error:
        raise OutputError(
            f"{what} of type {type(value).__name__} cannot be stored as JSON ({error}); "
            "return a pydantic model, a dataclass, a dict or None"
        ) from None
    return data


@overload
def parse_as(data: Any, model: None, *, what: str) -> Any: ...
@overload
def parse_as(data: Any, model: type[T], *, what: str) -> T: ...
def parse_as(data: Any, model: type[T] | None, *, what: str) -> T | Any:
    """``data`` validated into ``model`` (any type pydantic handles), or as is without one."""
    if model is None:
        return data
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as error:
        name = getattr(model, "__name__", repr(model))
        raise InputError(f"{what} does not match {name}: {error}") from None
