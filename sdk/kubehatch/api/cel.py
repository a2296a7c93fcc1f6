"""CEL, as used by concurrency expressions (``input.user_id``); evaluated with cel-python.

Kept in the API layer so that validation, ``kubehatch.testing`` and the operator
evaluate expressions the same way.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _environment() -> Any:
    import celpy  # deferred: building the parser takes time most imports never need

    return celpy.Environment()


@cache
def _program(expression: str) -> Any:
    environment = _environment()
    return environment.program(environment.compile(expression))


def check_expression(expression: str) -> None:
    """Raise ``ValueError`` naming the expression if it does not parse."""
    try:
        _program(expression)
    except Exception as error:  # celpy raises its own parse error types
        raise ValueError(f"{expression!r} is not a valid CEL expression: {error}") from None


def _evaluate(what: str, expression: str, run_input: Any, metadata: Any, **more: Any) -> Any:
    import celpy

    activation = {
        "input": celpy.json_to_cel(run_input),
        "additional_metadata": celpy.json_to_cel(dict(metadata or {})),
        **{name: celpy.json_to_cel(value) for name, value in more.items()},
    }
    try:
        result = _program(expression).evaluate(activation)
    except Exception as error:
        raise ValueError(f"{what} {expression!r} failed: {error}") from None
    if isinstance(result, Exception):  # celpy returns evaluation errors as values
        raise ValueError(f"{what} {expression!r} failed: {result}")
    return result


def concurrency_key(expression: str, run_input: Any, metadata: dict[str, str] | None = None) -> str:
    """The concurrency key of a run: ``expression`` evaluated with ``input`` and
    ``additional_metadata`` bound.

    Raises ``ValueError`` naming the expression when evaluation fails (e.g. the input
    has no such field), so the run can be marked failed with a useful message.
    """
    return key_of("concurrency expression", expression, run_input, metadata)


def key_of(
    what: str,
    expression: str,
    run_input: Any,
    metadata: dict[str, str] | None = None,
    **more: Any,
) -> str:
    """A key (of a rate limit, say) from ``expression``, with ``more`` variables bound
    (``parents``, for a wait's time); ValueError names ``what`` failed."""
    return str(_evaluate(what, expression, run_input, metadata, **more))


def concurrency_limit(
    expression: str, run_input: Any, metadata: dict[str, str] | None = None
) -> int:
    """A dynamic limit (maxRunsExpression): a whole number of runs, at least 1.

    Raises ``ValueError`` naming the expression when it fails or gives anything else.
    """
    result = _evaluate("maxRunsExpression", expression, run_input, metadata)
    if isinstance(result, bool) or not isinstance(result, int | float) or result != int(result):
        raise ValueError(
            f"maxRunsExpression {expression!r} gave {_shown(result)}, not a whole number of runs"
        )
    if int(result) < 1:
        raise ValueError(
            f"maxRunsExpression {expression!r} gave {int(result)}; it must be at least 1"
        )
    return int(result)


def condition(
    what: str,
    expression: str,
    run_input: Any,
    metadata: dict[str, str] | None,
    parents: dict[str, Any],
    **more: Any,
) -> bool:
    """A step's skipIf or runIf: true or false, with ``parents`` (outputs by step) bound
    (and ``more`` variables: an event trigger's filter binds ``event``).

    Raises ``ValueError`` naming ``what`` when it fails or gives anything but a bool.
    """
    from celpy.celtypes import BoolType

    result = _evaluate(what, expression, run_input, metadata, parents=parents, **more)
    if not isinstance(result, bool | BoolType):
        raise ValueError(f"{what} {expression!r} gave {_shown(result)}, not true or false")
    return bool(result)


def items(
    expression: str,
    run_input: Any,
    metadata: dict[str, str] | None,
    parents: dict[str, Any],
) -> list[Any]:
    """A forEach step's items: ``expression`` must give a list; its items as JSON values.

    Raises ``ValueError`` naming the expression when it fails or gives anything else.
    """
    from celpy.celtypes import ListType

    result = _evaluate("forEach", expression, run_input, metadata, parents=parents)
    if not isinstance(result, ListType | list):
        raise ValueError(f"forEach {expression!r} gave {_shown(result)}, not a list")
    return [_plain(item) for item in result]


def _plain(value: Any) -> Any:
    """A CEL value as plain JSON data (celpy's bool is an int, its null a class)."""
    from celpy import celtypes

    if isinstance(value, celtypes.BoolType | bool):
        return bool(value)
    if isinstance(value, celtypes.MapType | dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, celtypes.StringType | str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if value is None or isinstance(value, celtypes.NullType):
        return None
    return str(value)


def _shown(value: Any) -> str:
    """A CEL value as the user wrote it (celpy's types print as their class)."""
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, int | float):
        return repr(float(value) if isinstance(value, float) else int(value))
    return type(value).__name__
