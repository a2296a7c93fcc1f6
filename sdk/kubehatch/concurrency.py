"""Concurrency limits: how many runs of a workflow may run at once, per key.

The key is computed either by a Python function of the run's context (registered as
an action the engine calls before starting the run) or by a CEL expression over the
input, which the operator evaluates itself without starting a pod::

    Concurrency(user_key).max_runs(1)                   # key function
    Concurrency.expression("input.user_id").max_runs(2)  # CEL, cheaper
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from kubehatch._origin import caller_origin
from kubehatch.context import Context

if TYPE_CHECKING:
    from kubehatch.api.workflow import LimitStrategy

KeyFunction = Callable[[Context], Any]
"""``key(ctx) -> str`` (sync or async): the group the run belongs to."""

DEFAULT_STRATEGY = "CancelInProgress"
"""The value of ``LimitStrategy.CANCEL_IN_PROGRESS``, the default (a unit test keeps them equal).

Spelled out so that declaring a limit, which every step pod does when it imports its worker,
does not load the API models; reading :attr:`Concurrency.strategy` gives the enum member.
"""


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
        self._strategy: LimitStrategy | str = DEFAULT_STRATEGY
        self._strategy_set = False
        self.origin = caller_origin()

    @classmethod
    def expression(cls, cel: str) -> Concurrency:
        """A limit keyed by a CEL expression over ``input``, e.g. ``"input.user_id"``."""
        limit = cls()
        limit.cel = cel
        limit.origin = caller_origin()
        return limit

    @property
    def strategy(self) -> LimitStrategy | str:
        """What happens to a run over the limit: as set, else cancel the oldest running one."""
        if not self._strategy_set:
            from kubehatch.api.workflow import LimitStrategy

            return LimitStrategy.CANCEL_IN_PROGRESS
        return self._strategy

    @strategy.setter
    def strategy(self, strategy: LimitStrategy | str) -> None:
        self._strategy = strategy
        self._strategy_set = True

    @property
    def strategy_data(self) -> LimitStrategy | str:
        """The strategy as a spec takes it: :attr:`strategy`, the default by its value."""
        return self._strategy

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
        return f"Concurrency({source}, max_runs={self.limit}, strategy={self.strategy_data!s})"
