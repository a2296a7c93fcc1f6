"""Step data in and out: outputs become JSON, inputs are parsed into the caller's model.

Outputs cross process boundaries (a ConfigMap between step pods), so they are turned
into plain JSON values as soon as a step returns: a value that cannot be stored fails
the step that produced it, not the child that would read it later.

pydantic is loaded only for what needs it: a model or dataclass to dump or parse into, or
a value that is not JSON data already. A step pod whose steps take and return plain JSON
data, the common case, never loads it.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, TypeVar, overload

from kubehatch.errors import InputError, OutputError

T = TypeVar("T")

JSONValue = None | bool | int | float | str | list[Any] | dict[str, Any]

_SCALARS = frozenset({str, int, float, bool, type(None)})
_MAX_PLAIN_DEPTH = 64
"""Deeper data goes through pydantic_core, which also catches a list that contains itself."""


class _NotPlain(Exception):
    """The value is not plain JSON data: pydantic_core converts it."""


def _plain(value: Any, depth: int = 0) -> JSONValue:
    """A copy of ``value`` when it is plain JSON data, exactly what pydantic_core would return.

    Plain is: exact ``dict`` with ``str`` keys, ``list``, ``str``, ``int``, ``float``, ``bool``,
    ``None``, nested. Anything else (a subclass, a tuple, a datetime...) raises
    :class:`_NotPlain`.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value  # type: ignore[no-any-return]
    if depth < _MAX_PLAIN_DEPTH:
        if kind is list:
            return [_plain(item, depth + 1) for item in value]
        if kind is dict and all(type(key) is str for key in value):
            return {key: _plain(item, depth + 1) for key, item in value.items()}
    raise _NotPlain


def _is_model(value: Any) -> bool:
    """Whether ``value`` is a pydantic model (none can exist before pydantic.main is loaded)."""
    main = sys.modules.get("pydantic.main")
    return main is not None and isinstance(value, main.BaseModel)


def to_jsonable(value: Any, *, what: str = "value") -> JSONValue:
    """A pydantic model, dataclass, dict, list or scalar as plain JSON data.

    Models dump by alias, so the stored output matches the model's JSON form and
    parses back into it. ``what`` names the value in the error (e.g. "output of step
    'load'") raised when something cannot be represented, such as an open file.
    """
    if _is_model(value):
        return value.model_dump(mode="json", by_alias=True)  # type: ignore[no-any-return]
    data: JSONValue  # pydantic returns Any: plain JSON data, by the mode asked for
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        from pydantic import TypeAdapter

        data = TypeAdapter(type(value)).dump_python(value, mode="json", by_alias=True)
        return data
    try:
        return _plain(value)
    except _NotPlain:
        pass
    import pydantic_core

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
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as error:
        name = getattr(model, "__name__", repr(model))
        raise InputError(f"{what} does not match {name}: {error}") from None
