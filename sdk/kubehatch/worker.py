"""The Worker: the registry of everything a container image can run.

The same module is imported in two places: by ``kubehatch render`` to produce the
Workflow resources, and by the step pod to find the function behind an action. The
worker therefore only *records* during registration; :meth:`Worker.check` reports
every problem at once, and :meth:`Worker.resolve_action` serves the step pod.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from kubehatch._origin import caller_origin
from kubehatch.actions import Action, ResolvedAction
from kubehatch.compiler import CompiledWorkflow, workflow_name_of
from kubehatch.errors import Problem, RegistrationError, UnknownActionError
from kubehatch.middleware import Middleware
from kubehatch.naming import to_dns_label
from kubehatch.service import Service, middleware_problems, name_problem
from kubehatch.steps import Fn
from kubehatch.workflows import WorkflowJob


class Worker:
    """Workflows and actions that run in one image.

    :param name: the worker's name (a label on the rendered Workflows).
    :param image: the container image the steps run in, unless a workflow or step
        sets another one.
    """

    def __init__(self, name: str, *, image: str | None = None) -> None:
        self.name = name
        self.image = image
        self.origin = caller_origin()
        self.middleware: list[Middleware] = []
        self._services: dict[str, Service] = {}
        self._workflows: list[CompiledWorkflow] = []
        self._problems: list[Problem] = []
        problem = name_problem(name, self.origin, f"worker {name!r}")
        if problem:
            self._problems.append(problem)

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, image={self.image!r})"

    def new_service(self, name: str) -> Service:
        """The service called ``name``, created on first use."""
        if name not in self._services:
            self._services[name] = Service(self, name)
        return self._services[name]

    def use(self, *middleware: Middleware) -> Self:
        """Wrap every step of every service in ``middleware`` (outermost first)."""
        self._problems.extend(middleware_problems(middleware, f"worker {self.name!r}"))
        self.middleware.extend(middleware)
        return self

    def register_workflow(self, workflow: WorkflowJob | Fn[Any]) -> WorkflowJob | Fn[Any]:
        """Add a workflow in a service of its own name (see :mod:`kubehatch.service`)."""
        if not isinstance(workflow, WorkflowJob | Fn):
            self._problems.append(
                Problem(
                    caller_origin(),
                    f"worker {self.name!r}",
                    f"register_workflow() takes a WorkflowJob or an Fn, not {workflow!r}",
                )
            )
            return workflow
        service = to_dns_label(workflow_name_of(workflow))
        return self.new_service(service).register_workflow(workflow)

    def register_action(self, func: Callable[..., Any], *, name: str) -> Fn[Any]:
        """Register ``func`` as action ``name``, written "service:action"."""
        service, colon, action = name.partition(":")
        if not colon:
            self._problems.append(
                Problem(
                    caller_origin(),
                    f"action {name!r}",
                    "a worker-level action needs a service",
                    f"name it 'service:{name}'",
                )
            )
            return Fn(action=name)
        return self.new_service(service).register_action(func, name=action)

    def call(self, action: str) -> Fn[Any]:
        """A step running the registered action ``action`` ("service:action")."""
        return Fn(action=action).set_name(action.rpartition(":")[2])

    def _add_workflow(self, workflow: CompiledWorkflow) -> None:
        self._workflows.append(workflow)

    @property
    def services(self) -> tuple[Service, ...]:
        return tuple(self._services.values())

    @property
    def workflows(self) -> tuple[CompiledWorkflow, ...]:
        """Registered workflows, in registration order."""
        return tuple(self._workflows)

    def workflow(self, name: str) -> CompiledWorkflow:
        """The registered workflow called ``name``."""
        for workflow in self._workflows:
            if workflow.name == name:
                return workflow
        known = ", ".join(w.name for w in self._workflows) or "none"
        raise KeyError(f"worker {self.name!r} has no workflow {name!r} (workflows: {known})")

    @property
    def action_names(self) -> list[str]:
        """Every registered action, as "service:action"."""
        return [name for service in self._services.values() for name in service.action_names]

    def problems(self) -> list[Problem]:
        """Every registration problem, in the order the code declared things."""
        problems = list(self._problems)
        for service in self._services.values():
            problems.extend(service.problems())
        seen: dict[str, str] = {}
        for workflow in self._workflows:
            problems.extend(workflow.problems)
            if workflow.name in seen:
                problems.append(
                    Problem(
                        workflow.origin,
                        f"workflow {workflow.name!r}",
                        f"the name is already taken by the workflow at {seen[workflow.name]}",
                        "give each workflow its own name",
                    )
                )
            seen.setdefault(workflow.name, workflow.origin)
            problems.extend(self._unresolved_calls(workflow))
        return problems

    def _unresolved_calls(self, workflow: CompiledWorkflow) -> list[Problem]:
        """Steps made with ``call()`` whose action nobody registered."""
        problems = []
        for step in workflow.steps:
            if step.func is None and self._find(step.action) is None:
                registered = ", ".join(self.action_names) or "none"
                problems.append(
                    Problem(
                        step.origin,
                        f"workflow {workflow.name!r}, step {step.name!r}",
                        f"action {step.action!r} is not registered (registered: {registered})",
                        "register it with service.register_action(func, name=...)",
                    )
                )
        return problems

    def check(self) -> None:
        """Raise :class:`RegistrationError` listing every problem, if there is any."""
        problems = self.problems()
        if problems:
            raise RegistrationError(problems)

    def _find(self, name: str) -> tuple[Service, Action] | None:
        service_name, _, action_name = name.partition(":")
        service = self._services.get(service_name)
        action = service.action(action_name) if service else None
        return (service, action) if service and action else None

    def resolve_action(self, name: str) -> ResolvedAction:
        """The action "service:action" with its middleware, ready to run in a step pod.

        Raises :class:`RegistrationError` if the worker has problems (the code that
        registers it is broken) and :class:`UnknownActionError` for an unknown name.
        """
        self.check()
        found = self._find(name)
        if found is None:
            registered = ", ".join(self.action_names) or "none"
            hint = "" if ":" in name else " (write it as 'service:action')"
            raise UnknownActionError(
                f"action {name!r} is not registered on worker {self.name!r}{hint}; "
                f"registered: {registered}"
            )
        service, action = found
        return ResolvedAction(action, (*self.middleware, *service.middleware))
