"""The decorator style: ``wf = worker.workflow(...)`` and ``@wf.step(...)`` (Hatchet v1's).

The same model as the builder style underneath: each ``@wf.step`` makes an ``Fn`` (a
:class:`Step`, which is one), and the workflow is a ``WorkflowJob`` made of them, so both
styles render the same Workflow resource::

    wf = worker.workflow("welcome", on=Event("user:created"), input_validator=User)

    @wf.step(timeout="30s", retries=2)
    def greet(ctx: Context) -> Greeting:
        return Greeting(text=f"hello {wf.input(ctx).name}")

    @wf.step(parents=[greet])
    def send(ctx: Context) -> dict[str, str]:
        return {"sent": ctx.step_output(greet).text}   # typed Greeting

The workflow takes its place among the worker's workflows when ``worker.workflow(...)``
is called, and is declared again each time the worker is read (rendering, checks, a step
pod resolving its action), so steps added after that call count (see
:meth:`kubehatch._registry.Registry.add_live_workflow`). A decorated function becomes a
:class:`Step`: a parent for other steps, a key for ``ctx.step_output``, and still callable
as the function (``greet(ctx)`` in a unit test).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypedDict, TypeVar, Unpack, overload

from kubehatch._origin import caller_origin
from kubehatch._workflows import WorkflowJob
from kubehatch.api.hooks import Hook
from kubehatch.context import Context
from kubehatch.steps import Fn

if TYPE_CHECKING:
    from kubehatch._compiler import CompiledWorkflow
    from kubehatch._registry import Registry, Scope
    from kubehatch.api.workflow import Backoff, WorkflowSpec
    from kubehatch.concurrency import Concurrency
    from kubehatch.errors import Problem
    from kubehatch.ratelimits import RateLimit
    from kubehatch.triggers import Trigger

R = TypeVar("R")
InT = TypeVar("InT")
F = TypeVar("F", bound=Fn[Any])


class WorkflowOptions(TypedDict, total=False):
    """What ``worker.workflow(name, ...)`` takes besides the input model: ``WorkflowJob``'s."""

    description: str | None
    on: Trigger | Sequence[Trigger] | None
    timeout: str | timedelta | None
    concurrency: Concurrency | None
    default_priority: int | None
    fail_fast: bool
    image: str | None
    service_account_name: str | None
    pool: str | None
    """Run the steps on this WorkerPool's warm worker pods (in the run's namespace) instead
    of a pod per step; see README 'Warm worker pools'."""
    suspend: bool
    ttl_seconds_after_finished: int | None
    history_limit: int | None
    spawns: Sequence[str]


class StepFlow(TypedDict, total=False):
    """A decorated step's control flow, as ``Fn``'s ``set_skip_if``, ``set_run_if``,
    ``set_parent_rule`` and ``set_for_each`` set it."""

    skip_if: str
    run_if: str
    parent_rule: str
    for_each: str
    parallelism: int | None
    continue_on_item_failure: bool


class Step(Fn[R]):
    """A step declared with ``@wf.step``: an ``Fn`` that is still callable as its function."""

    def __call__(self, ctx: Context) -> Any:
        assert self.func is not None
        return self.func(ctx)


class StepDecorator(Protocol):
    """What ``@wf.step(...)`` with options returns: it turns a function into a :class:`Step`."""

    @overload
    def __call__(self, func: Callable[[Context], Awaitable[R]], /) -> Step[R]: ...
    @overload
    def __call__(self, func: Callable[[Context], R], /) -> Step[R]: ...


class WorkflowDef(Generic[InT]):
    """A workflow declared step by step; made by ``worker.workflow(...)``/``service.workflow``.

    Once registered it also answers what the worker knows of it: :attr:`spec`,
    :attr:`service`, :attr:`problems` (compiled on first read, like ``worker.workflows``).
    """

    def __init__(
        self,
        registry: Registry,
        scope: Scope,
        name: str,
        *,
        input_validator: type[InT] | None = None,
        options: WorkflowOptions | None = None,
        attached: bool = False,
    ) -> None:
        self.name = name
        self.input_validator = input_validator
        self.origin = caller_origin()
        self._registry = registry
        self._scope = scope
        self._options: dict[str, Any] = dict(options or {})
        self._steps: list[Fn[Any]] = []
        self._hooks: dict[str, Fn[Any]] = {}
        """The hook steps declared, by WorkflowJob field (on_failure, on_success, on_exit)."""
        self._attached = attached
        """True for a workflow registered with ``register_workflow`` and looked up by name."""

    def __repr__(self) -> str:
        return f"WorkflowDef({self.name!r}, steps={[s.name for s in self._steps]})"

    def job(self) -> WorkflowJob:
        """The workflow as declared so far, in the builder style's terms."""
        return WorkflowJob(
            name=self.name,
            steps=list(self._steps),
            on_failure=self._hooks.get("on_failure"),
            on_success=self._hooks.get("on_success"),
            on_exit=self._hooks.get("on_exit"),
            input_validator=self.input_validator,
            origin=self.origin,
            **self._options,
        )

    # --- declaring ------------------------------------------------------------------------
    @overload
    def step(self, func: Callable[[Context], Awaitable[R]], /) -> Step[R]: ...
    @overload
    def step(self, func: Callable[[Context], R], /) -> Step[R]: ...
    @overload
    def step(
        self,
        *,
        name: str | None = None,
        parents: Sequence[str | Fn[Any]] = (),
        timeout: str | timedelta | None = None,
        retries: int = 0,
        backoff: Backoff | None = None,
        image: str | None = None,
        pool: str | None = None,
        requests: dict[str, str | int] | None = None,
        limits: dict[str, str | int] | None = None,
        env: dict[str, str] | None = None,
        rate_limits: Sequence[RateLimit] = (),
        **flow: Unpack[StepFlow],
    ) -> StepDecorator: ...
    def step(
        self,
        func: Callable[[Context], Any] | None = None,
        *,
        name: str | None = None,
        parents: Sequence[str | Fn[Any]] = (),
        timeout: str | timedelta | None = None,
        retries: int = 0,
        backoff: Backoff | None = None,
        image: str | None = None,
        pool: str | None = None,
        requests: dict[str, str | int] | None = None,
        limits: dict[str, str | int] | None = None,
        env: dict[str, str] | None = None,
        rate_limits: Sequence[RateLimit] = (),
        **flow: Unpack[StepFlow],
    ) -> Any:
        """Add the decorated function as a step; ``@wf.step`` or ``@wf.step(parents=[...])``.

        The options are those of ``Fn``'s builder methods: ``name`` (default: the function's,
        kebab-cased), ``parents`` (steps or step names), ``timeout``, ``retries`` and
        ``backoff``, ``image``, ``pool`` (a WorkerPool over the workflow's ``pool``; ``""``
        runs the step in a Job of its own), ``requests``/``limits``, ``env``, ``rate_limits``,
        and the control flow of :class:`StepFlow` (``skip_if``, ``run_if``, ``parent_rule``,
        ``for_each`` with ``parallelism`` and ``continue_on_item_failure``).
        """
        origin = caller_origin()

        options: dict[str, Any] = {
            "name": name, "parents": parents, "timeout": timeout, "retries": retries,
            "backoff": backoff, "image": image, "pool": pool, "requests": requests,
            "limits": limits, "env": env, "rate_limits": rate_limits, **flow,
        }  # fmt: skip

        def decorate(function: Callable[[Context], Any]) -> Step[Any]:
            made = _configured(Step(function), origin, **options)
            if self._accepts("step"):
                self._steps.append(made)
            return made

        return decorate(func) if func is not None else decorate

    def on_failure(self, func: Callable[[Context], Any] | None = None, /, **options: Any) -> Any:
        """The step run once the others are done if one failed (``WorkflowJob.on_failure``).

        Takes the options of :meth:`step` except ``parents``.
        """
        return self._hook(Hook.ON_FAILURE, func, caller_origin(), options)

    def on_success(self, func: Callable[[Context], Any] | None = None, /, **options: Any) -> Any:
        """The step run once the others are done if none failed (``WorkflowJob.on_success``)."""
        return self._hook(Hook.ON_SUCCESS, func, caller_origin(), options)

    def on_exit(self, func: Callable[[Context], Any] | None = None, /, **options: Any) -> Any:
        """The step run last, either way (``WorkflowJob.on_exit``): a finally."""
        return self._hook(Hook.ON_EXIT, func, caller_origin(), options)

    def _hook(
        self, hook: Hook, func: Callable[[Context], Any] | None, origin: str, options: Any
    ) -> Any:
        def decorate(function: Callable[[Context], Any]) -> Step[Any]:
            made = _configured(Step(function), origin, **options)
            if self._accepts(f"{hook.attribute.replace('_', '-')} step"):
                self._hooks[hook.attribute] = made
            return made

        return decorate(func) if func is not None else decorate

    def add(self, step: F, *, parents: Sequence[str | Fn[Any]] = ()) -> F:
        """Add a step made elsewhere, e.g. ``service.call("action")``; returns it."""
        step.add_parents(*parents)
        if self._accepts("step"):
            self._steps.append(step)
        return step

    def input(self, ctx: Context) -> InT:
        """The run's input parsed into the workflow's ``input_validator`` (as is without one)."""
        return ctx.workflow_input(self.input_validator)

    @property
    def steps_declared(self) -> tuple[Fn[Any], ...]:
        """The steps added so far, in order."""
        return tuple(self._steps)

    def _accepts(self, what: str) -> bool:
        if not self._attached:
            return True
        self._scope.report(
            f"cannot add a {what}: it was registered with register_workflow()",
            subject=f"workflow {self.name!r}",
            fix="add the step to its WorkflowJob, or declare a new workflow with options",
        )
        return False

    # --- what the worker knows of it ------------------------------------------------------
    @property
    def compiled(self) -> CompiledWorkflow:
        """The registered workflow, its spec validated (what ``worker.get_workflow`` gives)."""
        for workflow in self._registry.workflows:
            if workflow.name == self.name:
                return workflow
        raise KeyError(f"workflow {self.name!r} is not registered")

    @property
    def spec(self) -> WorkflowSpec | None:
        """The validated spec (None while the workflow has problems)."""
        return self.compiled.spec

    @property
    def service(self) -> str:
        return self.compiled.service

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.compiled.problems


def open_workflow(
    registry: Registry,
    scope: Scope,
    service: str,
    name: str,
    input_validator: type[Any] | None,
    options: WorkflowOptions,
) -> WorkflowDef[Any]:
    """``worker.workflow(name, ...)``: declare a workflow, or look one up by its name alone.

    With nothing but a name, an existing workflow of that name is returned: the same
    ``WorkflowDef`` for one declared this way, a read-only one for a workflow registered
    with ``register_workflow`` (what ``worker.workflow(name)`` always returned: its
    ``spec``, ``service`` and ``problems``). Anything else declares a new workflow.
    """
    if input_validator is None and not options:
        existing = registry.live(name)
        if isinstance(existing, WorkflowDef):
            return existing
        if any(declared.name == name for declared in registry.declared):
            return WorkflowDef(registry, scope, name, attached=True)
    workflow = WorkflowDef(registry, scope, name, input_validator=input_validator, options=options)
    registry.add_live_workflow(service, workflow)
    return workflow


def _configured(
    step: Step[Any],
    origin: str,
    *,
    name: str | None = None,
    parents: Sequence[str | Fn[Any]] = (),
    timeout: str | timedelta | None = None,
    retries: int = 0,
    backoff: Backoff | None = None,
    image: str | None = None,
    pool: str | None = None,
    requests: dict[str, str | int] | None = None,
    limits: dict[str, str | int] | None = None,
    env: dict[str, str] | None = None,
    rate_limits: Sequence[RateLimit] = (),
    **flow: Unpack[StepFlow],
) -> Step[Any]:
    """``step`` with the decorator's options, as the builder methods set them."""
    step.origin = origin
    if name is not None:
        step.set_name(name)
    step.add_parents(*parents)
    if timeout is not None:
        step.set_timeout(timeout)
    if retries or backoff is not None:
        step.set_retries(retries, backoff=backoff)
    if image is not None:
        step.set_image(image)
    if pool is not None:
        step.set_pool(pool)
    if requests is not None or limits is not None:
        step.set_resources(requests=requests, limits=limits)
    for key, value in (env or {}).items():
        step.add_env(key, value)
    step.add_rate_limit(*rate_limits)
    if "skip_if" in flow:
        step.set_skip_if(flow["skip_if"])
    if "run_if" in flow:
        step.set_run_if(flow["run_if"])
    if "parent_rule" in flow:
        step.set_parent_rule(flow["parent_rule"])
    if "for_each" in flow:
        step.set_for_each(
            flow["for_each"],
            parallelism=flow.get("parallelism"),
            continue_on_item_failure=flow.get("continue_on_item_failure", False),
        )
    return step
