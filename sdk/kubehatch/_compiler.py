"""Turn a registered ``WorkflowJob`` (or lone ``Fn``) into a validated ``WorkflowSpec``.

Validation is the API models' (the same rules the operator and the CRD apply); what
this module adds is *where*: every problem pydantic or the graph checks find at a
path such as ``steps[1].timeout`` is traced back to the line that declared that step,
trigger or limit, and all problems are collected instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from kubehatch._middleware import StepFunction
from kubehatch._naming import step_name_for, workflow_name_for
from kubehatch._origin import function_origin
from kubehatch._signatures import call_problem
from kubehatch._workflows import WorkflowJob
from kubehatch.api.fields import DnsLabel
from kubehatch.api.graph import Path, format_path, step_graph_problems
from kubehatch.api.workflow import SpecProblems, WorkflowSpec
from kubehatch.concurrency import Concurrency
from kubehatch.errors import Problem
from kubehatch.steps import Fn
from kubehatch.triggers import Trigger, as_trigger_list

_HINTS = {
    "timezone_aware": "use a timezone-aware datetime, e.g. datetime(2030, 1, 1, tzinfo=UTC)",
}


@dataclass(frozen=True)
class StepBinding:
    """A compiled step (or key function): the action it registers or runs."""

    name: str
    action: str
    """'service:action'."""
    func: StepFunction | None
    """The function to register under ``action``; None when the step calls an existing one."""
    origin: str


@dataclass(frozen=True)
class CompiledWorkflow:
    """A registered workflow: its spec (None when invalid), bindings and problems."""

    name: str
    service: str
    origin: str
    spec: WorkflowSpec | None
    steps: tuple[StepBinding, ...]
    key_function: StepBinding | None
    problems: tuple[Problem, ...]


def workflow_name_of(item: WorkflowJob | Fn[Any]) -> str:
    """The name a WorkflowJob or lone Fn will be registered under."""
    if isinstance(item, Fn):
        if item.has_explicit_name or item.func is None:
            return item.name
        return workflow_name_for(item.func)
    return str(getattr(item, "name", ""))


def as_workflow_job(item: WorkflowJob | Fn[Any]) -> WorkflowJob:
    """A lone ``Fn`` as the single-step workflow it stands for."""
    if isinstance(item, Fn):
        return WorkflowJob(name=workflow_name_of(item), steps=[item], origin=item.origin)
    return item


def compile_workflow(job: WorkflowJob, *, service: str, image: str | None) -> CompiledWorkflow:
    """Validate ``job`` as part of ``service``; ``image`` is the worker's default image."""
    return _Compilation(job, service, image).run()


class _Compilation:
    """State of one compilation: the job, the problems so far, origins by spec path."""

    def __init__(self, job: WorkflowJob, service: str, image: str | None) -> None:
        self.job = job
        self.service = service
        self.image = image
        self.problems: list[Problem] = []
        self.steps: list[Fn[Any]] = []
        self.names: list[str] = []
        self.name_of: dict[int, str] = {}
        """Final step names by ``id()`` of the Fn, to resolve parents given as Fn objects."""
        self.trigger_origins: dict[str, list[str]] = {"events": [], "crons": [], "at": []}

    def subject(self, step: str | None = None, field: str = "") -> str:
        text = f"workflow {self.job.name!r}"
        if step is not None:
            text += f", step {step!r}"
        return f"{text}, {field}" if field else text

    def add(self, origin: str, subject: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(origin, subject, message, fix))

    def run(self) -> CompiledWorkflow:
        try:
            TypeAdapter(DnsLabel).validate_python(self.job.name)
        except ValidationError as error:
            self.add(self.job.origin, self.subject(field="name"), _clean(error.errors()[0]))
        self.steps = self._collect_steps()
        self.names = self._step_names()
        self.name_of = {id(fn): name for fn, name in zip(self.steps, self.names, strict=True)}
        bindings = [
            self._binding(step, name) for step, name in zip(self.steps, self.names, strict=True)
        ]
        key_binding, concurrency = self._concurrency()
        data = {
            "description": self.job.description,
            "service": self.service,
            "image": self.job.image or self.image,
            "serviceAccountName": self.job.service_account_name,
            "triggers": self._triggers(),
            "timeout": self.job.timeout,
            "concurrency": concurrency,
            "steps": [
                self._step_data(step, b) for step, b in zip(self.steps, bindings, strict=True)
            ],
            "suspend": self.job.suspend,
            "ttlSecondsAfterFinished": self.job.ttl_seconds_after_finished,
            "historyLimit": self.job.history_limit,
        }
        spec = self._validate({key: value for key, value in data.items() if value is not None})
        return CompiledWorkflow(
            name=self.job.name,
            service=self.service,
            origin=self.job.origin,
            spec=spec if not self.problems else None,
            steps=tuple(bindings),
            key_function=key_binding,
            problems=tuple(self.problems),
        )

    def _collect_steps(self) -> list[Fn[Any]]:
        steps: object = self.job.steps  # what user code passed, whatever the annotation says
        if not isinstance(steps, Sequence) or isinstance(steps, str):
            steps = [steps]
        valid = []
        for index, step in enumerate(steps):
            if isinstance(step, Fn):
                valid.append(step)
            else:
                self.add(
                    self.job.origin,
                    self.subject(field=f"steps[{index}]"),
                    f"{step!r} is not a step",
                    "wrap the function: Fn(my_function)",
                )
        return valid

    def _step_names(self) -> list[str]:
        """Explicit names as given; derived ones made unique with -2, -3 (kubehatch._naming)."""
        taken: set[str] = set()
        names = []
        for step in self.steps:
            name = step.name
            if not step.has_explicit_name:
                counter = 1
                while name in taken:
                    counter += 1
                    name = f"{step.name}-{counter}"
            taken.add(name)
            names.append(name)
        return names

    def _binding(self, step: Fn[Any], name: str) -> StepBinding:
        if step.func is None:
            action = step.action or name
            qualified = action if ":" in action else f"{self.service}:{action}"
            return StepBinding(name, qualified, None, step.origin)
        problem = call_problem(step.func, arguments=1, expected="step(ctx)")
        if problem:
            self.add(function_origin(step.func), self.subject(name), problem)
        return StepBinding(name, f"{self.service}:{name}", step.func, step.origin)

    def _step_data(self, step: Fn[Any], binding: StepBinding) -> dict[str, Any]:
        parents: list[Any] = []
        for parent in step.parents:
            if isinstance(parent, Fn):
                parents.append(self.name_of.get(id(parent), parent.name))
            elif isinstance(parent, str):
                parents.append(parent)
            else:
                self.add(
                    step.origin,
                    self.subject(binding.name, "parents"),
                    f"{parent!r} is not a step",
                    "name parents by step name or pass their Fn",
                )
        data = {
            "name": binding.name,
            "action": binding.action,
            "parents": parents,
            "timeout": step.timeout,
            "retries": step.retries,
            "backoff": step.backoff,
            "image": step.image,
            "resources": step.resources,
            "env": [{"name": name, "value": value} for name, value in step.env],
        }
        return {key: value for key, value in data.items() if value is not None}

    def _triggers(self) -> dict[str, list[Any]]:
        values: dict[str, list[Any]] = {"events": [], "crons": [], "at": []}
        for trigger in as_trigger_list(self.job.on):
            if not isinstance(trigger, Trigger):
                self.add(
                    self.job.origin,
                    self.subject(field="on"),
                    f"{trigger!r} is not a trigger",
                    f"use Event({trigger!r}), Events(...), Cron(...), Crons(...) or At(...)",
                )
                continue
            if trigger.empty:
                self.add(
                    trigger.origin,
                    self.subject(field="on"),
                    f"{trigger!r} names nothing",
                    "pass at least one event key, cron schedule or time",
                )
            parts = {"events": trigger.events, "crons": trigger.crons, "at": trigger.at}
            for kind, items in parts.items():
                values[kind].extend(items)
                self.trigger_origins[kind].extend(trigger.origin for _ in items)
        return values

    def _concurrency(self) -> tuple[StepBinding | None, dict[str, Any] | None]:
        limit = self.job.concurrency
        if limit is None:
            return None, None
        if not isinstance(limit, Concurrency):
            self.add(
                self.job.origin,
                self.subject(field="concurrency"),
                f"{limit!r} is not a concurrency limit",
                "use Concurrency(key_function) or Concurrency.expression('input.key')",
            )
            return None, None
        data: dict[str, Any] = {"maxRuns": limit.limit, "limitStrategy": limit.strategy}
        if limit.cel is not None:
            data["expression"] = limit.cel
        binding = None
        if limit.key_function is not None:
            key = limit.key_function
            problem = call_problem(key, arguments=1, expected="key(ctx) -> str")
            if problem:
                self.add(function_origin(key), self.subject(field="concurrency key"), problem)
            name = limit.action_name or step_name_for(key)
            binding = StepBinding(name, f"{self.service}:{name}", key, limit.origin)
            data["action"] = binding.action
        return binding, data

    def _validate(self, data: dict[str, Any]) -> WorkflowSpec | None:
        try:
            return WorkflowSpec.model_validate(data)
        except ValidationError as error:
            cross_checked = False
            for detail in error.errors():
                cause = detail.get("ctx", {}).get("error")
                if isinstance(cause, SpecProblems):
                    cross_checked = True
                    for problem in cause.problems:
                        self._add_at(problem.path, problem.message)
                else:
                    self._add_at(tuple(detail["loc"]), _clean(detail))
            if not cross_checked:  # field errors stopped the model check: run the graph part
                edges = [(step["name"], step["parents"]) for step in data["steps"]]
                for problem in step_graph_problems(edges):
                    self._add_at(problem.path, problem.message)
            return None

    def _add_at(self, path: Path, message: str) -> None:
        """Record a problem found at ``path`` of the spec, at the origin of that part."""
        head = path[0] if path else ""
        if head == "steps" and len(path) > 1 and isinstance(path[1], int):
            index = path[1]
            step = self.steps[index]
            self.add(step.origin, self.subject(self.names[index], format_path(path[2:])), message)
        elif head == "triggers" and len(path) > 2 and isinstance(path[2], int):
            origin = self.trigger_origins[str(path[1])][path[2]]
            self.add(origin, self.subject(field=f"on ({path[1]})"), message)
        elif head == "concurrency" and isinstance(self.job.concurrency, Concurrency):
            field = format_path(path)
            self.add(self.job.concurrency.origin, self.subject(field=field), message)
        else:
            self.add(self.job.origin, self.subject(field=format_path(path)), message)


def _clean(detail: Any) -> str:
    """A pydantic error as one readable sentence (our validators' text already is one)."""
    message = str(detail["msg"])
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    text = f"{message} (got {detail['input']!r})"
    hint = _HINTS.get(detail["type"])
    return f"{text}; {hint}" if hint else text
