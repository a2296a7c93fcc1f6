"""Services: named groups of workflows and actions, with their own middleware.

Actions are addressed as "service:action", so a service is also the namespace of its
actions. ``Worker.register_workflow`` puts each workflow in a service named after the
workflow (as Hatchet does), so step names never clash across workflows; use
``worker.new_service(...)`` to group workflows and share actions between them.

A service is a named view of its worker's registry (:mod:`kubehatch._registry`):
what it registers lands there, and what it reports is read from there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack, overload

from kubehatch._actions import Action
from kubehatch._middleware import Middleware
from kubehatch._naming import step_name_for
from kubehatch._registry import Registry
from kubehatch._workflows import WorkflowJob
from kubehatch.errors import Problem
from kubehatch.steps import Fn

if TYPE_CHECKING:
    from kubehatch._compiler import CompiledWorkflow
    from kubehatch._decorators import WorkflowDef, WorkflowOptions

InT = TypeVar("InT")


class Service:
    """A group of workflows and actions; create one with ``worker.new_service(name)``."""

    def __init__(self, registry: Registry, name: str) -> None:
        self.name = name
        self._registry = registry
        self._scope = registry.service(name)

    def __repr__(self) -> str:
        return f"Service({self.name!r})"

    @property
    def origin(self) -> str:
        """Where the service was first created."""
        return self._scope.origin

    @property
    def middleware(self) -> list[Middleware]:
        """This service's middleware, outermost first (inside the worker's)."""
        return self._scope.middleware

    def use(self, *middleware: Middleware) -> Self:
        """Wrap every step of this service in ``middleware`` (inside the worker's)."""
        self._scope.use(middleware)
        return self

    def register_workflow(self, workflow: WorkflowJob | Fn[Any]) -> WorkflowJob | Fn[Any]:
        """Add a workflow (or a single ``Fn``, a one-step workflow) to this service.

        Problems are recorded, not raised: ``worker.check()`` and ``kubehatch render``
        report all of them at once. Returns ``workflow`` unchanged.
        """
        if self._scope.accepts(workflow):
            self._registry.add_workflow(self.name, workflow)
        return workflow

    @overload
    def workflow(
        self, name: str, *, input_validator: type[InT], **options: Unpack[WorkflowOptions]
    ) -> WorkflowDef[InT]: ...
    @overload
    def workflow(
        self, name: str, *, input_validator: None = None, **options: Unpack[WorkflowOptions]
    ) -> WorkflowDef[Any]: ...
    def workflow(
        self,
        name: str,
        *,
        input_validator: type[Any] | None = None,
        **options: Unpack[WorkflowOptions],
    ) -> WorkflowDef[Any]:
        """Declare a workflow in this service, decorator style (see :mod:`kubehatch._decorators`).

        Takes ``WorkflowJob``'s options (``on=``, ``concurrency=``, ``timeout=``...) and
        ``input_validator``, the input's model; add steps with ``@wf.step(...)``. Called
        with a name alone, returns the workflow of that name if there is one.
        """
        from kubehatch._decorators import open_workflow  # decorator style only: not every pod

        return open_workflow(self._registry, self._scope, self.name, name, input_validator, options)

    def register_action(self, func: Callable[..., Any], *, name: str | None = None) -> Fn[Any]:
        """Register ``func`` as action ``name`` (default: derived from the function).

        Returns a step running it, like :meth:`call`; other workflows get one with
        ``service.call(name)`` or ``worker.call("service:name")``.
        """
        action = name if name is not None else step_name_for(func)
        self._registry.add_action(self.name, action, func)
        return self.call(action)

    def call(self, action: str) -> Fn[Any]:
        """A step that runs this service's action ``action`` (registered now or later)."""
        return Fn(action=f"{self.name}:{action}").set_name(action)

    def action(self, name: str) -> Action | None:
        """The action registered as ``name`` (the part after ':'), if any."""
        return self._scope.actions.get(name)

    @property
    def action_names(self) -> list[str]:
        """Registered actions, as "service:action"."""
        return [action.name for action in self._scope.actions.values()]

    @property
    def workflows(self) -> tuple[CompiledWorkflow, ...]:
        """Workflows registered on this service, in registration order."""
        return tuple(w for w in self._registry.workflows if w.service == self.name)

    def problems(self) -> list[Problem]:
        """Problems found while registering on this service (not cross-service ones)."""
        return list(self._scope.problems)
