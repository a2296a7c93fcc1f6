"""Services: named groups of workflows and actions, with their own middleware.

Actions are addressed as "service:action", so a service is also the namespace of its
actions. ``Worker.register_workflow`` puts each workflow in a service named after the
workflow (as Hatchet does), so step names never clash across workflows; use
``worker.new_service(...)`` to group workflows and share actions between them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from pydantic import TypeAdapter, ValidationError

from kubehatch._origin import caller_origin, function_origin
from kubehatch.actions import Action
from kubehatch.api.fields import DnsLabel
from kubehatch.compiler import CompiledWorkflow, StepBinding, as_workflow_job, compile_workflow
from kubehatch.errors import Problem
from kubehatch.middleware import Middleware
from kubehatch.naming import step_name_for
from kubehatch.signatures import call_problem
from kubehatch.steps import Fn
from kubehatch.workflows import WorkflowJob

if TYPE_CHECKING:
    from kubehatch.worker import Worker

_NAME = TypeAdapter(DnsLabel)


def name_problem(name: str, origin: str, subject: str) -> Problem | None:
    """A problem if ``name`` is not a DNS label (the rule for every kubehatch name)."""
    try:
        _NAME.validate_python(name)
    except ValidationError as error:
        return Problem(origin, subject, str(error.errors()[0]["msg"]).removeprefix("Value error, "))
    return None


def middleware_problems(middleware: tuple[Middleware, ...], owner: str) -> list[Problem]:
    """Problems with middleware that cannot be called as ``mw(ctx, next)``."""
    problems = []
    for layer in middleware:
        message = call_problem(layer, arguments=2, expected="middleware(ctx, next)")
        if message:
            problems.append(Problem(function_origin(layer), f"{owner}, middleware", message))
    return problems


class Service:
    """A group of workflows and actions; create one with ``worker.new_service(name)``."""

    def __init__(self, worker: Worker, name: str) -> None:
        self.worker = worker
        self.name = name
        self.origin = caller_origin()
        self.middleware: list[Middleware] = []
        self._actions: dict[str, Action] = {}
        self._problems: list[Problem] = []
        problem = name_problem(name, self.origin, f"service {name!r}")
        if problem:
            self._problems.append(problem)

    def __repr__(self) -> str:
        return f"Service({self.name!r})"

    def use(self, *middleware: Middleware) -> Self:
        """Wrap every step of this service in ``middleware`` (inside the worker's)."""
        self._problems.extend(middleware_problems(middleware, f"service {self.name!r}"))
        self.middleware.extend(middleware)
        return self

    def register_workflow(self, workflow: WorkflowJob | Fn[Any]) -> WorkflowJob | Fn[Any]:
        """Add a workflow (or a single ``Fn``, a one-step workflow) to this service.

        Problems are recorded, not raised: ``worker.check()`` and ``kubehatch render``
        report all of them at once. Returns ``workflow`` unchanged.
        """
        if not isinstance(workflow, WorkflowJob | Fn):
            self._problems.append(
                Problem(
                    caller_origin(),
                    f"service {self.name!r}",
                    f"register_workflow() takes a WorkflowJob or an Fn, not {workflow!r}",
                )
            )
            return workflow
        compiled = compile_workflow(
            as_workflow_job(workflow), service=self.name, image=self.worker.image
        )
        seen: set[str] = set()  # a repeated step name is already a problem of its own
        for binding in (*compiled.steps, compiled.key_function):
            if binding is not None and binding.func is not None and binding.action not in seen:
                seen.add(binding.action)
                self._add_action(binding)
        self.worker._add_workflow(compiled)
        return workflow

    def register_action(self, func: Callable[..., Any], *, name: str | None = None) -> Fn[Any]:
        """Register ``func`` as action ``name`` (default: derived from the function).

        Returns a step running it, like :meth:`call`; other workflows get one with
        ``service.call(name)`` or ``worker.call("service:name")``.
        """
        origin = caller_origin()
        action = name if name is not None else step_name_for(func)
        subject = f"action '{self.name}:{action}'"
        problem = name_problem(action, origin, subject)
        if problem:
            self._problems.append(problem)
        message = call_problem(func, arguments=1, expected="action(ctx)")
        if message:
            self._problems.append(Problem(function_origin(func), subject, message))
        self._add_action(StepBinding(action, f"{self.name}:{action}", func, origin))
        return self.call(action)

    def call(self, action: str) -> Fn[Any]:
        """A step that runs this service's action ``action`` (registered now or later)."""
        return Fn(action=f"{self.name}:{action}").set_name(action)

    def _add_action(self, binding: StepBinding) -> None:
        """Register a function; the same function twice is fine, another one is a conflict."""
        assert binding.func is not None
        key = binding.action.partition(":")[2]
        existing = self._actions.get(key)
        if existing is None:
            self._actions[key] = Action(binding.action, binding.func, binding.origin)
        elif existing.func is not binding.func:
            self._problems.append(
                Problem(
                    binding.origin,
                    f"action {binding.action!r}",
                    f"is already registered for another function at {existing.origin}",
                    "give one of the steps another name with .set_name(...)",
                )
            )

    def action(self, name: str) -> Action | None:
        """The action registered as ``name`` (the part after ':'), if any."""
        return self._actions.get(name)

    @property
    def action_names(self) -> list[str]:
        """Registered actions, as "service:action"."""
        return [action.name for action in self._actions.values()]

    @property
    def workflows(self) -> tuple[CompiledWorkflow, ...]:
        """Workflows registered on this service, in registration order."""
        return tuple(w for w in self.worker.workflows if w.service == self.name)

    def problems(self) -> list[Problem]:
        """Problems found while registering on this service (not cross-service ones)."""
        return list(self._problems)
