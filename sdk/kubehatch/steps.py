"""``Fn``: one step of a workflow, or on its own a single-step workflow.

``Fn`` is a builder: its ``set_*``/``add_*`` methods change it in place and return it,
so calls chain as in ``Fn(send).set_name("send-email").set_retries(3)``. Registering
a workflow takes a snapshot, so changing an ``Fn`` afterwards does not change a
workflow already registered. Names follow :mod:`kubehatch._naming`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, overload

from kubehatch._naming import step_name_for
from kubehatch._origin import caller_origin
from kubehatch._signatures import return_type
from kubehatch.context import Context

if TYPE_CHECKING:
    from kubehatch.api.workflow import Backoff, ParentRule
    from kubehatch.ratelimits import RateLimit

OutT = TypeVar("OutT")


class Fn(Generic[OutT]):
    """A step running ``func(ctx)``; its return value is the step's output.

    ``Fn(func)`` is an ``Fn[R]`` when ``func`` returns ``R`` (or, async, awaits to
    ``R``), so ``ctx.step_output(step)`` is typed ``R``; an ``Fn`` made from an action
    name is an ``Fn[Any]``.
    """

    @overload
    def __init__(
        self, func: Callable[[Context], Awaitable[OutT]], *, action: None = None
    ) -> None: ...
    @overload
    def __init__(self, func: Callable[[Context], OutT], *, action: None = None) -> None: ...
    @overload
    def __init__(self: Fn[Any], func: None = None, *, action: str) -> None: ...
    def __init__(
        self,
        func: Callable[[Context], OutT] | Callable[[Context], Awaitable[OutT]] | None = None,
        *,
        action: str | None = None,
    ) -> None:
        """
        :param func: the step function, ``func(ctx)``, sync or async.
        :param action: instead of ``func``, a registered action to run, as
            'service:action' (this is what ``service.call(...)`` returns).
        """
        if (func is None) == (action is None):
            raise TypeError("Fn() takes a step function or action='service:action', not both")
        self._setup(func, action)

    def _setup(self, func: Callable[[Context], Any] | None, action: str | None) -> None:
        self.func: Callable[[Context], Any] | None = func
        self.action = action
        self.wait: dict[str, Any] | None = None
        """For a step that waits (see :mod:`kubehatch.waits`): its spec.steps[].wait."""
        self._name: str | None = None
        self.parents: list[str | Fn[Any]] = []
        self.timeout: str | timedelta | None = None
        self.retries: int = 0
        self.backoff: Backoff | None = None
        self.image: str | None = None
        self.resources: dict[str, dict[str, str | int]] | None = None
        self.pool: str | None = None
        self.env: list[tuple[str, str]] = []
        self.rate_limits: list[RateLimit] = []
        self.parent_rule: str | None = None
        self.skip_if: str | None = None
        self.run_if: str | None = None
        self.for_each: str | None = None
        self.parallelism: int | None = None
        self.continue_on_item_failure: bool | None = None
        self.origin = caller_origin()

    def __repr__(self) -> str:
        return f"Fn({self.name!r})"

    @property
    def name(self) -> str:
        """The step name: set with :meth:`set_name`, else derived (see kubehatch._naming)."""
        if self._name is not None:
            return self._name
        if self.func is not None:
            return step_name_for(self.func)
        if self.wait is not None:
            return next(iter(self.wait))  # "sleep", "until", "event", "approval"
        return (self.action or "").rpartition(":")[2]

    @property
    def has_explicit_name(self) -> bool:
        """Whether the name was set (derived names may get a -2 suffix in a workflow)."""
        return self._name is not None or self.func is None

    @property
    def output_type(self) -> type[OutT] | None:
        """The model or dataclass the function declares it returns, if any.

        None for any other return type: outputs are then the stored JSON data as is.
        """
        return return_type(self.func) if self.func is not None else None

    def set_name(self, name: str) -> Self:
        """Name the step (and the workflow, when this Fn is registered on its own)."""
        self._name = name
        return self

    def add_parents(self, *parents: str | Fn[Any]) -> Self:
        """Run after these steps (names or ``Fn`` objects) and receive their outputs."""
        self.parents.extend(parents)
        return self

    def set_parent_rule(self, rule: ParentRule | str) -> Self:
        """When the step runs: "AllSucceeded" (the default: every parent succeeded),
        "AllDone" (every parent finished, whatever the outcome) or "AnySucceeded" (every
        parent finished, one at least succeeded); otherwise it is skipped."""
        self.parent_rule = str(rule)
        return self

    def set_skip_if(self, expression: str) -> Self:
        """Skip the step (and what needs it) when this CEL expression is true. It reads
        ``input``, ``parents`` (the parents' outputs by step name) and
        ``additional_metadata``: ``"parents.check.amount > 100"``."""
        self.skip_if = expression
        return self

    def set_for_each(
        self,
        expression: str,
        *,
        parallelism: int | None = None,
        continue_on_item_failure: bool = False,
    ) -> Self:
        """Run the step once per item of the list this CEL expression gives (``input.files``,
        ``parents.list.ids``, ``[1, 2, 3]``), each item a Job of its own with its own
        retries; ``ctx.item`` is the item. At most ``parallelism`` items run at once. The
        step's output is the list of the items' outputs, in order; a failed item fails the
        step unless ``continue_on_item_failure`` (its output is then None)."""
        self.for_each = expression
        self.parallelism = parallelism
        self.continue_on_item_failure = continue_on_item_failure or None
        return self

    def set_run_if(self, expression: str) -> Self:
        """Run the step only when this CEL expression is true (see :meth:`set_skip_if`)."""
        self.run_if = expression
        return self

    def set_timeout(self, timeout: str | timedelta) -> Self:
        """Longest time one attempt may run: "30s", "5m", "1h30m" or a timedelta."""
        self.timeout = timeout
        return self

    def set_retries(self, retries: int, *, backoff: Backoff | None = None) -> Self:
        """Retry a failed attempt up to ``retries`` times, waiting per ``backoff``."""
        self.retries = retries
        self.backoff = backoff
        return self

    def set_image(self, image: str) -> Self:
        """Run this step in another image than the worker's."""
        self.image = image
        return self

    def set_pool(self, pool: str) -> Self:
        """Run this step on the warm workers of the WorkerPool ``pool`` (in the run's
        namespace), over the workflow's ``pool``; ``""`` runs it in a Job of its own even
        when the workflow has a pool. On a pool the step runs in the pool's pods: its own
        image, resources and env apply only in a Job. Local runs ignore pools."""
        self.pool = pool
        return self

    def set_resources(
        self,
        *,
        requests: dict[str, str | int] | None = None,
        limits: dict[str, str | int] | None = None,
    ) -> Self:
        """Container resources, e.g. ``requests={"cpu": "500m"}, limits={"memory": "1Gi"}``."""
        self.resources = {"requests": dict(requests or {}), "limits": dict(limits or {})}
        return self

    def add_rate_limit(self, *limits: RateLimit) -> Self:
        """Each attempt takes units of these rate limits; over one, it waits its turn."""
        self.rate_limits.extend(limits)
        return self

    def add_env(self, name: str, value: str) -> Self:
        """Set an environment variable in the step's container."""
        self.env.append((name, value))
        return self
