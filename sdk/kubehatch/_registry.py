"""The registry behind a Worker: every action, workflow, middleware and problem.

A :class:`~kubehatch.worker.Worker` owns one :class:`Registry`; each
:class:`~kubehatch.service.Service` is a named view of it. Registration flows one
way, from the worker and its services into the registry, which knows neither: it
records what they add and answers what is registered, which action runs with which
middleware, and what is wrong.

Problems are recorded, not raised, so that ``worker.check()`` and ``kubehatch
render`` report all of them at once, each at the line that caused it.

A workflow is recorded as declared (:mod:`kubehatch._declare`) and compiled, its spec
validated against the API models (:mod:`kubehatch._compiler`), the first time
:attr:`Registry.workflows` is read: a step pod, which registers its worker only to resolve
one action, never loads the models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kubehatch._actions import Action, ResolvedAction
from kubehatch._declare import DeclaredWorkflow, StepBinding, as_workflow_job, declare_workflow
from kubehatch._middleware import Middleware
from kubehatch._naming import dns_label_error
from kubehatch._origin import caller_origin, function_origin
from kubehatch._signatures import call_problem
from kubehatch._workflows import WorkflowJob
from kubehatch.errors import Problem
from kubehatch.steps import Fn

if TYPE_CHECKING:
    from kubehatch._compiler import CompiledWorkflow


class LiveWorkflow(Protocol):
    """A workflow declared step by step (decorator style): its current ``WorkflowJob``."""

    name: str

    def job(self) -> WorkflowJob: ...


def name_problem(name: str, origin: str, subject: str) -> Problem | None:
    """A problem if ``name`` is not a DNS label (the rule for every kubehatch name)."""
    error = dns_label_error(name)
    if error is None:
        return None
    return Problem(origin, subject, str(error["msg"]).removeprefix("Value error, "))


@dataclass
class Scope:
    """The worker, or one of its services: its middleware, actions and own problems."""

    subject: str
    """How problems name it: "worker 'users'" or "service 'mail'"."""
    origin: str
    middleware: list[Middleware] = field(default_factory=list)
    actions: dict[str, Action] = field(default_factory=dict)
    """A service's actions, by the part of their name after ':'."""
    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def named(cls, kind: str, name: str) -> Scope:
        """A new scope for ``kind`` ("worker", "service") ``name``, made here in user code."""
        scope = cls(f"{kind} {name!r}", caller_origin())
        problem = name_problem(name, scope.origin, scope.subject)
        if problem:
            scope.problems.append(problem)
        return scope

    def use(self, middleware: tuple[Middleware, ...]) -> None:
        """Add middleware, recording any that cannot be called as ``mw(ctx, next)``."""
        for layer in middleware:
            message = call_problem(layer, arguments=2, expected="middleware(ctx, next)")
            if message:
                problem = Problem(function_origin(layer), f"{self.subject}, middleware", message)
                self.problems.append(problem)
        self.middleware.extend(middleware)

    def accepts(self, item: object) -> bool:
        """Whether ``item`` can be registered as a workflow; records a problem if not."""
        if isinstance(item, WorkflowJob | Fn):
            return True
        self.report(f"register_workflow() takes a WorkflowJob or an Fn, not {item!r}")
        return False

    def report(self, message: str, *, subject: str | None = None, fix: str = "") -> None:
        """Record a problem at the line of user code registering now."""
        self.problems.append(Problem(caller_origin(), subject or self.subject, message, fix))


class Registry:
    """What a worker and its services registered; see the module docstring."""

    def __init__(self, worker: str, *, image: str | None) -> None:
        self.image = image
        """The worker's image: the default of workflows registered from now on."""
        self.worker = Scope.named("worker", worker)
        self.services: dict[str, Scope] = {}
        self.declared: list[DeclaredWorkflow] = []
        """Registered workflows, in registration order, before validation."""
        self._compiled: list[CompiledWorkflow] = []
        self._live: dict[int, tuple[str, LiveWorkflow, str | None]] = {}
        """Decorator-style workflows by their index in ``declared``: service, source, image."""

    def service(self, name: str) -> Scope:
        """The scope of service ``name``, created on first use."""
        if name not in self.services:
            self.services[name] = Scope.named("service", name)
        return self.services[name]

    def add_workflow(self, service: str, workflow: WorkflowJob | Fn[Any]) -> DeclaredWorkflow:
        """Declare ``workflow`` in ``service`` and register the functions of its steps.

        Its spec is validated later, when :attr:`workflows` is first read (see
        :mod:`kubehatch._declare`).
        """
        declared = self._declare(service, as_workflow_job(workflow), self.image)
        self.declared.append(declared)
        return declared

    def add_live_workflow(self, service: str, source: LiveWorkflow) -> None:
        """Register a workflow still being declared (decorator style, :mod:`kubehatch._decorators`).

        It takes its place in the registration order now, and is declared again from
        ``source.job()`` whenever the registry is read, so steps added later count.
        """
        self._live[len(self.declared)] = (service, source, self.image)
        self.declared.append(self._declare(service, source.job(), self.image))

    def live(self, name: str) -> LiveWorkflow | None:
        """The live workflow called ``name``, if there is one."""
        return next((src for _, src, _ in self._live.values() if src.name == name), None)

    def refresh(self) -> None:
        """Declare the live workflows again; a changed one is compiled again when read."""
        for index, (service, source, image) in self._live.items():
            declared = self._declare(service, source.job(), image)
            if declared != self.declared[index]:
                self.declared[index] = declared
                del self._compiled[index:]

    def _declare(self, service: str, job: WorkflowJob, image: str | None) -> DeclaredWorkflow:
        declared = declare_workflow(job, service=service, image=image)
        seen: set[str] = set()  # a repeated step name is already a problem of its own
        for binding in (*declared.steps, declared.key_function):
            if binding is not None and binding.func is not None and binding.action not in seen:
                seen.add(binding.action)
                self._bind(service, binding)
        return declared

    @property
    def workflows(self) -> list[CompiledWorkflow]:
        """Registered workflows with their specs validated, in registration order.

        Each is compiled the first time this is read after it was registered: this loads the
        API models, which registering alone (a step pod) does not.
        """
        from kubehatch._compiler import compile_workflow

        self.refresh()
        for declared in self.declared[len(self._compiled) :]:
            self._compiled.append(compile_workflow(declared))
        return list(self._compiled)

    def add_action(self, service: str, name: str, func: Callable[..., Any]) -> None:
        """Register ``func`` as action "service:name", checking the name and the function."""
        origin = caller_origin()
        subject = f"action '{service}:{name}'"
        problems = self.service(service).problems
        problem = name_problem(name, origin, subject)
        if problem:
            problems.append(problem)
        message = call_problem(func, arguments=1, expected="action(ctx)")
        if message:
            problems.append(Problem(function_origin(func), subject, message))
        self._bind(service, StepBinding(name, f"{service}:{name}", func, origin))

    def _bind(self, service: str, binding: StepBinding) -> None:
        """Register a function; the same function twice is fine, another one is a conflict."""
        assert binding.func is not None
        scope = self.service(service)
        key = binding.action.partition(":")[2]
        existing = scope.actions.get(key)
        if existing is None:
            scope.actions[key] = Action(binding.action, binding.func, binding.origin)
        elif existing.func is not binding.func:
            problem = Problem(
                binding.origin,
                f"action {binding.action!r}",
                f"is already registered for another function at {existing.origin}",
                "give one of the steps another name with .set_name(...)",
            )
            if problem not in scope.problems:  # live workflows are declared more than once
                scope.problems.append(problem)

    @property
    def action_names(self) -> list[str]:
        """Every registered action, as "service:action"."""
        self.refresh()
        scopes = self.services.values()
        return [action.name for scope in scopes for action in scope.actions.values()]

    def resolve(self, name: str) -> ResolvedAction | None:
        """Action "service:action" wrapped in the worker's, then the service's middleware."""
        self.refresh()
        service_name, _, action_name = name.partition(":")
        scope = self.services.get(service_name)
        action = scope.actions.get(action_name) if scope else None
        if scope is None or action is None:
            return None
        return ResolvedAction(action, (*self.worker.middleware, *scope.middleware))

    def problems(self, *, specs: bool = True) -> list[Problem]:
        """Every problem: the worker's, each service's, then each workflow's.

        With ``specs=False`` the workflows' specs are not validated against the API models:
        the problems are those registering found (names, signatures, conflicts, actions).
        """
        self.refresh()
        problems = list(self.worker.problems)
        for scope in self.services.values():
            problems.extend(scope.problems)
        seen: dict[str, str] = {}
        workflows: list[CompiledWorkflow] | list[DeclaredWorkflow]
        workflows = self.workflows if specs else self.declared
        for workflow in workflows:
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

    def _unresolved_calls(self, workflow: CompiledWorkflow | DeclaredWorkflow) -> list[Problem]:
        """Steps made with ``call()`` whose action nobody registered."""
        problems = []
        for step in workflow.steps:
            if step.func is None and step.action and self.resolve(step.action) is None:
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
