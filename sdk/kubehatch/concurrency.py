"""Concurrency limits: how many runs of a workflow may run at once, per key.

The key is computed either by a Python function of the run's context (registered as
an action the engine calls before starting the run) or by a CEL expression over the
input, which the operator evaluates itself without starting a pod::

    Concurrency(user_key).max_runs(1)                   # key function
    Concurrency.expression("input.user_id").max_runs(2)  # CEL, cheaper
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from kubehatch._origin import caller_origin
from kubehatch.api.workflow import LimitStrategy
from kubehatch.context import Context

KeyFunction = Callable[[Context], Any]
"""``key(ctx) -> str`` (sync or async): the group the run belongs to."""


class Concurrency:
    """A concurrency limit builder; methods change it in place and return it for chaining."""

    def __init__(self, key: KeyFunction | None = None, *, name: str | None = None) -> None:
        """
        :param key: the key function; use :meth:`expression` for a CEL key instead.
        :param name: action name of the key function (default: derived from it).
        """
        self.key_function = key
        self.action_name = name
        self.cel: str | None = None
        self.limit = 1
        self.strategy: LimitStrategy | str = LimitStrategy.CANCEL_IN_PROGRESS
        self.origin = caller_origin()

    @classmethod
    def expression(cls, cel: str) -> Concurrency:
        """A limit keyed by a CEL expression over ``input``, e.g. ``"input.user_id"``."""
        limit = cls()
        limit.cel = cel
        limit.origin = caller_origin()
        return limit

    def max_runs(self, runs: int) -> Self:
        """How many runs may run at once per key (default 1)."""
        self.limit = runs
        return self

    def limit_strategy(self, strategy: LimitStrategy | str) -> Self:
        """What happens to a run over the limit (default: cancel the oldest running one)."""
        self.strategy = strategy
        return self

    def __repr__(self) -> str:
        source = f"expression({self.cel!r})" if self.cel is not None else repr(self.key_function)
        return f"Concurrency({source}, max_runs={self.limit}, strategy={self.strategy!s})"
