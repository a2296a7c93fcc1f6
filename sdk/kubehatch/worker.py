"""The Worker: everything a container image can run.

The same module is imported in two places: by ``kubehatch render`` to produce the
Workflow resources, and by the step pod to find the function behind an action. The
worker therefore only *records* during registration, in its registry
(:mod:`kubehatch._registry`); :meth:`Worker.check` reports every problem at once, and
:meth:`Worker.resolve_action` serves the step pod.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack, overload

from kubehatch._actions import ResolvedAction
from kubehatch._declare import workflow_name_of
from kubehatch._middleware import Middleware
from kubehatch._naming import to_dns_label
from kubehatch._registry import Registry
from kubehatch._workflows import WorkflowJob
from kubehatch.errors import Problem, RegistrationError, UnknownActionError
from kubehatch.service import Service
from kubehatch.steps import Fn

if TYPE_CHECKING:
    from kubehatch._compiler import CompiledWorkflow
    from kubehatch._decorators import WorkflowDef, WorkflowOptions

InT = TypeVar("InT")


class Worker:
    """Workflows and actions that run in one image.

    :param name: the worker's name (a label on the rendered Workflows).
    :param image: the container image the steps run in, unless a workflow or step
        sets another one.
    """

    def __init__(self, name: str, *, image: str | None = None) -> None:
        self.name = name
        self._registry = Registry(name, image=image)
        self._services: dict[str, Service] = {}

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, image={self.image!r})"

    @property
    def image(self) -> str | None:
        """The default image of the workflows registered from now on."""
        return self._registry.image

    @image.setter
    def image(self, image: str | None) -> None:
        self._registry.image = image

    @property
    def origin(self) -> str:
        """Where the worker was created."""
        return self._registry.worker.origin

    @property
    def middleware(self) -> list[Middleware]:
        """The worker's middleware, outermost first."""
        return self._registry.worker.middleware

    def new_service(self, name: str) -> Service:
        """The service called ``name``, created on first use."""
        if name not in self._services:
            self._services[name] = Service(self._registry, name)
        return self._services[name]

    def use(self, *middleware: Middleware) -> Self:
        """Wrap every step of every service in ``middleware`` (outermost first)."""
        self._registry.worker.use(middleware)
        return self

    def register_workflow(self, workflow: WorkflowJob | Fn[Any]) -> WorkflowJob | Fn[Any]:
        """Add a workflow in a service of its own name (see :mod:`kubehatch.service`)."""
        if not self._registry.worker.accepts(workflow):
            return workflow
        service = to_dns_label(workflow_name_of(workflow))
        return self.new_service(service).register_workflow(workflow)

    def register_action(self, func: Callable[..., Any], *, name: str) -> Fn[Any]:
        """Register ``func`` as action ``name``, written "service:action"."""
        service, colon, action = name.partition(":")
        if colon:
            return self.new_service(service).register_action(func, name=action)
        self._registry.worker.report(
            "a worker-level action needs a service",
            subject=f"action {name!r}",
            fix=f"name it 'service:{name}'",
        )
        return Fn(action=name)

    def call(self, action: str) -> Fn[Any]:
        """A step running the registered action ``action`` ("service:action")."""
        return Fn(action=action).set_name(action.rpartition(":")[2])

    @property
    def services(self) -> tuple[Service, ...]:
        return tuple(self._services.values())

    @property
    def workflows(self) -> tuple[CompiledWorkflow, ...]:
        """Registered workflows, in registration order."""
        return tuple(self._registry.workflows)

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
        """Declare a workflow, decorator style, in a service of its own name::

            wf = worker.workflow("welcome", on=Event("user:created"), input_validator=User)

            @wf.step(retries=2)
            def greet(ctx: Context) -> Greeting: ...

        Takes ``WorkflowJob``'s options and ``input_validator`` (see
        :mod:`kubehatch._decorators`). Called with a name alone it returns the workflow of
        that name when there is one, whichever style declared it (its ``spec``, ``service``
        and ``problems``), as it always did; :meth:`get_workflow` is the lookup alone.
        """
        service = self.new_service(to_dns_label(name))
        return service.workflow(name, input_validator=input_validator, **options)

    def get_workflow(self, name: str) -> CompiledWorkflow:
        """The registered workflow called ``name`` (``KeyError`` if there is none)."""
        for workflow in self._registry.workflows:
            if workflow.name == name:
                return workflow
        known = ", ".join(w.name for w in self._registry.workflows) or "none"
        raise KeyError(f"worker {self.name!r} has no workflow {name!r} (workflows: {known})")

    @property
    def action_names(self) -> list[str]:
        """Every registered action, as "service:action"."""
        return self._registry.action_names

    def problems(self) -> list[Problem]:
        """Every registration problem: the worker's, each service's, each workflow's."""
        return self._registry.problems()

    def check(self) -> None:
        """Raise :class:`RegistrationError` listing every problem, if there is any."""
        problems = self.problems()
        if problems:
            raise RegistrationError(problems)

    def resolve_action(self, name: str, *, check_specs: bool = True) -> ResolvedAction:
        """The action "service:action" with its middleware, ready to run in a step pod.

        Raises :class:`RegistrationError` if the worker has problems (the code that
        registers it is broken) and :class:`UnknownActionError` for an unknown name.

        With ``check_specs=False``, what ``kubehatch step`` does, the problems are those
        registering finds (names, signatures, conflicts, actions called but not registered),
        without validating the workflows' specs against the API models: a step runs for a
        Workflow the API server accepted, and loading the models would cost every step pod
        more than a short step does.
        """
        if check_specs:
            self.check()
        else:
            problems = self._registry.problems(specs=False)
            if problems:
                raise RegistrationError(problems)
        resolved = self._registry.resolve(name)
        if resolved is None:
            registered = ", ".join(self.action_names) or "none"
            hint = "" if ":" in name else " (write it as 'service:action')"
            raise UnknownActionError(
                f"action {name!r} is not registered on worker {self.name!r}{hint}; "
                f"registered: {registered}"
            )
        return resolved
