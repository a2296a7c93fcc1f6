"""Checks that user callables can be called the way the engine will call them.

Done at registration so that a step written as ``def step(ctx, extra)`` is reported
by ``kubehatch render`` (with its file and line) instead of failing in a pod later.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, get_type_hints


def _unwrapped(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func


def callable_name(func: Any) -> str:
    """A readable name for error messages."""
    target = _unwrapped(func)
    return getattr(target, "__qualname__", None) or type(target).__qualname__


def is_async_callable(func: Any) -> bool:
    """Whether calling ``func`` returns a coroutine (async def, or async ``__call__``)."""
    target = _unwrapped(func)
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(target).__call__)


def call_problem(func: Any, *, arguments: int, expected: str) -> str | None:
    """Why ``func`` cannot be called with ``arguments`` positional arguments, or None.

    ``expected`` shows the intended shape in the message, e.g. "step(ctx)".
    """
    if not callable(func):
        return f"{func!r} is not callable; expected a function like {expected}"
    target = _unwrapped(func)
    if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        return f"{callable_name(func)} is a generator; return the result instead of yielding it"
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have no signature: trust them
        return None
    try:
        signature.bind(*range(arguments))
    except TypeError as error:
        return f"{callable_name(func)}{signature} cannot be called as {expected}: {error}"
    return None


def return_type(func: Callable[..., Any]) -> type[Any] | None:
    """The declared return class when it is one outputs can be parsed into, else None.

    Only pydantic models and dataclasses count: for anything else (dict, None,
    unions) the raw JSON value is what a child step wants anyway.
    """
    from dataclasses import is_dataclass

    try:
        hint = get_type_hints(_unwrapped(func)).get("return")
    except Exception:  # unresolvable forward references: no parsing
        return None
    if isinstance(hint, type) and (_is_model_class(hint) or is_dataclass(hint)):
        return hint
    return None


def _is_model_class(cls: type[Any]) -> bool:
    """Whether ``cls`` is a pydantic model (none exists before pydantic.main is loaded)."""
    main = sys.modules.get("pydantic.main")
    return main is not None and issubclass(cls, main.BaseModel)
