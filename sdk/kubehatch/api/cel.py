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


def concurrency_key(expression: str, run_input: Any) -> str:
    """The concurrency key of a run: ``expression`` evaluated with ``input`` bound.

    Raises ``ValueError`` naming the expression when evaluation fails (e.g. the input
    has no such field), so the run can be marked failed with a useful message.
    """
    import celpy

    try:
        result = _program(expression).evaluate({"input": celpy.json_to_cel(run_input)})
    except Exception as error:
        raise ValueError(f"concurrency expression {expression!r} failed: {error}") from None
    if isinstance(result, Exception):  # celpy returns evaluation errors as values
        raise ValueError(f"concurrency expression {expression!r} failed: {result}")
    return str(result)
