"""Concurrency limits: how many runs of a workflow may run at once, per key.

The key is computed either by a Python function of the run's context (registered as
an action the engine calls before starting the run) or by a CEL expression over the
input, which the operator evaluates itself without starting a pod::

    Concurrency(user_key).max_runs(1)                   # key function
    Concurrency.expression("input.user_id").max_runs(2)  # CEL, cheaper
    Concurrency.expression("input.user_id").max_runs("input.tier == 'premium' ? 10 : 1")
    Concurrency.expression("input.tenant").max_runs(1).max_runs_total(4).limit_strategy(
        "GroupRoundRobin"
    )
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self

from kubehatch._origin import caller_origin
from kubehatch.context import Context
from kubehatch.durations import format_duration

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
        self.limit_expression: str | None = None
        self.total: int | None = None
        self.timeout: str | None = None
        self.shared_name: str | None = None
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

    def max_runs(self, runs: int | str) -> Self:
        """How many runs may run at once per key (default 1): a number, or a CEL expression
        over ``input`` and ``additional_metadata`` (the newest run of a key sets its limit)."""
        if isinstance(runs, str):
            self.limit_expression = runs
        else:
            self.limit, self.limit_expression = runs, None
        return self

    def max_runs_total(self, runs: int) -> Self:
        """How many runs may run at once across all keys; needs a strategy that queues.
        With ``GroupRoundRobin`` the free slots go to the keys in turn."""
        self.total = runs
        return self

    def shared(self, name: str) -> Self:
        """Share the limit with every workflow of the namespace naming it: their runs of
        one key count together (declare the same limit on each)."""
        self.shared_name = name
        return self

    def queue_timeout(self, timeout: str | timedelta) -> Self:
        """Cancel a run that waited this long for a slot ("10m", or a timedelta)."""
        self.timeout = timeout if isinstance(timeout, str) else format_duration(timeout)
        return self

    def limit_strategy(self, strategy: LimitStrategy | str) -> Self:
        """What happens to a run over the limit (default: cancel the oldest running one)."""
        self.strategy = strategy
        return self

    def __repr__(self) -> str:
        source = f"expression({self.cel!r})" if self.cel is not None else repr(self.key_function)
        limit = self.limit_expression if self.limit_expression is not None else self.limit
        total = f", max_runs_total={self.total}" if self.total is not None else ""
        return f"Concurrency({source}, max_runs={limit!r}{total}, strategy={self.strategy_data!s})"
