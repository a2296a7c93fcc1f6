"""The context a step function receives: its input, its parents' outputs, cancellation.

A Context is built from plain data (what the step pod reads from the WorkflowRun and
the parents' output ConfigMaps), so the same step code runs in a pod, in
``kubehatch.testing`` and in a unit test that builds one by hand::

    ctx = Context(workflow_input={"username": "ada"}, step_name="greet")

It is immutable except for cancellation: middleware hands values to the step by
passing a new context made with :meth:`Context.with_value` to ``next``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from kubehatch._serialization import parse_as
from kubehatch.errors import StepCancelledError, UnknownParentError

if TYPE_CHECKING:
    from kubehatch.spawning import SpawnRequest

T = TypeVar("T")
OutT_co = TypeVar("OutT_co", covariant=True)

_POLL_SECONDS = 0.05


class StepRef(Protocol[OutT_co]):
    """Anything naming a step whose output is an ``OutT_co``, like an ``Fn[OutT_co]``.

    Its ``output_type``, when set, is the class the stored output is parsed into.
    """

    @property
    def name(self) -> str: ...

    @property
    def output_type(self) -> type[OutT_co] | None: ...


class Context:
    """What a step knows about its run. Built by the engine, or by hand in tests."""

    __slots__ = (
        "_by_step",
        "_failures",
        "_input",
        "_metadata",
        "_parent_outputs",
        "_values",
        "cancelled",
        "item",
        "item_index",
        "retry_count",
        "run_name",
        "step_name",
        "workflow_name",
    )

    def __init__(
        self,
        *,
        workflow_input: Any = None,
        parent_outputs: Mapping[str, Any] | None = None,
        step_name: str = "",
        workflow_name: str = "",
        run_name: str = "",
        retry_count: int = 0,
        cancelled: threading.Event | None = None,
        values: Mapping[str, Any] | None = None,
        failures: Mapping[str, str] | None = None,
        item: Any = None,
        item_index: int | None = None,
        additional_metadata: Mapping[str, str] | None = None,
        by_step: threading.Event | None = None,
    ) -> None:
        """
        :param workflow_input: the run's input (a JSON object, ``{}`` when missing).
        :param parent_outputs: output of every parent step, by step name (``None`` for
            a parent that returned nothing).
        :param retry_count: 0 on the first attempt, 1 on the first retry, ...
        :param cancelled: the event the engine sets to ask the step to stop (e.g. on
            SIGTERM); a new one is made when omitted.
        :param values: values set by middleware (see :meth:`with_value`).
        :param failures: for an on-failure step, what each failed step said, by name.
        :param item: in a forEach step, this attempt's item (``item_index`` its index).
        :param additional_metadata: the run's metadata (an event's, for a run it started).
        """
        self._input = {} if workflow_input is None else workflow_input
        self._parent_outputs = MappingProxyType(dict(parent_outputs or {}))
        self._values = MappingProxyType(dict(values or {}))
        self.step_name = step_name
        self.workflow_name = workflow_name
        self.run_name = run_name
        self.retry_count = retry_count
        self.cancelled = cancelled if cancelled is not None else threading.Event()
        self._by_step = by_step if by_step is not None else threading.Event()
        self._failures = MappingProxyType(dict(failures or {}))
        self._metadata = MappingProxyType(dict(additional_metadata or {}))
        self.item = item
        """In a forEach step: the item this Job runs for (None elsewhere)."""
        self.item_index = item_index
        """In a forEach step: the item's index in the list, from 0 (None elsewhere)."""

    def __repr__(self) -> str:
        return (
            f"Context(workflow={self.workflow_name!r}, step={self.step_name!r}, "
            f"run={self.run_name!r}, retry_count={self.retry_count})"
        )

    def step_run_errors(self) -> dict[str, str]:
        """In an on-failure step: the error of each step that failed, by step name (empty
        in any other step)."""
        return dict(self._failures)

    @property
    def additional_metadata(self) -> dict[str, str]:
        """The run's additional metadata (spec.additionalMetadata): for a run an event
        started, the event's (``kubehatch event push -m source=web``)."""
        return dict(self._metadata)

    @property
    def parents(self) -> tuple[str, ...]:
        """Names of the parent steps, whose outputs :meth:`step_output` returns."""
        return tuple(self._parent_outputs)

    @overload
    def workflow_input(self, model: None = None) -> Any: ...
    @overload
    def workflow_input(self, model: type[T]) -> T: ...
    def workflow_input(self, model: type[T] | None = None) -> T | Any:
        """The run's input, parsed into ``model`` (a pydantic model, dataclass...) if given.

        Raises :class:`~kubehatch.errors.InputError` (a permanent error: retrying with
        the same input cannot help) when the input does not fit the model.
        """
        return parse_as(self._input, model, what=f"input of workflow {self.workflow_name!r}")

    @overload
    def step_output(self, step: StepRef[T], model: None = None) -> T: ...
    @overload
    def step_output(self, step: str, model: None = None) -> Any: ...
    @overload
    def step_output(self, step: str | StepRef[Any], model: type[T]) -> T: ...
    def step_output(self, step: str | StepRef[Any], model: type[T] | None = None) -> T | Any:
        """The output of parent ``step`` (a name or the parent's ``Fn``), parsed into ``model``.

        Given an ``Fn`` whose function declares a model or dataclass return type, the
        output is parsed into that type without naming it again; type checkers see the
        type the function declares (``Fn[R]`` gives ``R``), a name gives ``Any``.
        """
        if not isinstance(step, str):
            model = model if model is not None else step.output_type
            step = step.name
        if step not in self._parent_outputs:
            parents = ", ".join(repr(name) for name in self._parent_outputs) or "none"
            raise UnknownParentError(
                f"step {self.step_name!r} has no parent {step!r} (its parents: {parents}); "
                f"add it with .add_parents({step!r}) to receive its output"
            )
        return parse_as(self._parent_outputs[step], model, what=f"output of step {step!r}")

    def with_value(self, key: str, value: Any) -> Context:
        """A copy of this context that also carries ``key`` (for middleware to pass on)."""
        return Context(
            workflow_input=self._input,
            parent_outputs=self._parent_outputs,
            step_name=self.step_name,
            workflow_name=self.workflow_name,
            run_name=self.run_name,
            retry_count=self.retry_count,
            cancelled=self.cancelled,
            values={**self._values, key: value},
            failures=self._failures,
            item=self.item,
            item_index=self.item_index,
            by_step=self._by_step,
            additional_metadata=self._metadata,
        )

    def spawn(self, workflow: str, input: Any = None, *, key: str | None = None) -> SpawnRequest:
        """Ask for one child run of ``workflow``: ``return ctx.spawn("child", {...})``.

        The step ends there: return the request as the step's output (code after it does
        not wait for anything). The operator creates the run, owned by this one, and the
        step stays Running, without a pod, until it finishes; then the child's result
        (its leaf step's output) becomes this step's output. A failed child fails the
        step, which is not retried. The Workflow must list ``workflow`` in ``spawns``
        (``WorkflowJob(spawns=[...])``). ``key``, if given, names the child run
        (``<run>-<step>-<key>-<hash>``) instead of its index.
        """
        from kubehatch.spawning import spawn_request

        keys = [key] if key is not None else None
        return spawn_request(workflow, [input], keys=keys, single=True)

    def spawn_many(
        self, workflow: str, inputs: Iterable[Any], *, keys: Sequence[str | None] | None = None
    ) -> SpawnRequest:
        """Ask for one child run of ``workflow`` per input: ``return ctx.spawn_many(...)``.

        As :meth:`spawn`, but this step's output becomes the list of the children's
        results, in the order of ``inputs``.
        """
        from kubehatch.spawning import spawn_request

        return spawn_request(workflow, inputs, keys=keys)

    def value(self, key: str, default: Any = None) -> Any:
        """A value set by middleware with :meth:`with_value`, or ``default``."""
        return self._values.get(key, default)

    def cancel(self) -> None:
        """Cancel this step (Hatchet's ``ctx.cancel()``): ``ctx.cancelled`` is set, and once
        the step returns or raises, it ends Cancelled, not retried; its dependents are
        skipped. The run ends Cancelled, unless another step failed (Failed outranks it)."""
        self._by_step.set()
        self.cancelled.set()

    @property
    def cancelled_by_step(self) -> bool:
        """Whether the step's own code called :meth:`cancel`."""
        return self._by_step.is_set()

    def is_cancelled(self) -> bool:
        """Whether the run was cancelled; long loops should check this and return."""
        return self.cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~kubehatch.errors.StepCancelledError` if the run was cancelled."""
        if self.cancelled.is_set():
            raise StepCancelledError(
                f"step {self.step_name!r} of run {self.run_name!r} was cancelled"
            )

    def wait_for_cancel(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds for cancellation; True if cancelled."""
        return self.cancelled.wait(timeout)

    async def wait_for_cancel_async(self, timeout: float | None = None) -> bool:
        """:meth:`wait_for_cancel` for async steps: polls every 50 ms without a thread.

        Polling, because a thread blocked on the event would keep the process alive
        after the step returned.
        """
        import asyncio  # here: code that builds a Context, a worker's, need not load it

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.cancelled.is_set():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await asyncio.sleep(
                _POLL_SECONDS if remaining is None else min(_POLL_SECONDS, remaining)
            )
        return True
