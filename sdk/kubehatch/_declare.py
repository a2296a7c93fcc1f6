"""A registered ``WorkflowJob`` (or lone ``Fn``) as plain data, taken when it is registered.

Registering runs wherever the worker's module is imported: in ``kubehatch render``, and in
every step pod, which needs only the step functions behind the actions. So registering takes
this snapshot, in plain Python: which function each step binds to which action, the spec as
the data the API models will be given, where each part was declared, and the problems found
without the models (names, steps that are not steps, signatures, triggers). Validating the
spec against the API models, which loads pydantic, the models and croniter, is
:mod:`kubehatch._compiler`'s, when a spec is first asked for (``worker.check()``, ``kubehatch
render``, ``worker.workflows``).

The snapshot is what registering promises: changing an ``Fn`` or a ``WorkflowJob`` after it
was registered does not change the workflow registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubehatch._middleware import StepFunction
from kubehatch._naming import dns_label_error, step_name_for, workflow_name_for
from kubehatch._origin import function_origin
from kubehatch._signatures import call_problem
from kubehatch._workflows import WorkflowJob
from kubehatch.api.hooks import Hook
from kubehatch.concurrency import Concurrency
from kubehatch.errors import Problem
from kubehatch.ratelimits import RateLimit
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
class DeclaredWorkflow:
    """A registered workflow before validation: bindings, spec data, origins, problems so far."""

    name: str
    service: str
    origin: str
    steps: tuple[StepBinding, ...]
    key_function: StepBinding | None
    problems: tuple[Problem, ...]
    """Those found without the API models; validating ``data`` may add more."""
    data: dict[str, Any]
    """The spec as given to ``WorkflowSpec.model_validate`` (camelCase keys)."""
    step_origins: tuple[str, ...]
    """Where each step of ``data["steps"]`` was declared, in order."""
    trigger_origins: dict[str, tuple[str, ...]]
    """Where each event, cron and time of ``data["triggers"]`` was declared, by kind."""
    concurrency_origin: str | None
    """Where the concurrency limit was declared, if the workflow has one."""
    input_model: Any
    """``input_validator``: the compiler puts its JSON Schema into the spec."""

    def subject(self, step: str | None = None, field: str = "") -> str:
        """How problems name the workflow, or one of its steps, or a field of either."""
        return _subject(self.name, step, field)


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


def declare_workflow(job: WorkflowJob, *, service: str, image: str | None) -> DeclaredWorkflow:
    """``job`` as part of ``service``; ``image`` is the worker's default image."""
    return _Declaration(job, service, image).run()


def clean_message(detail: Any) -> str:
    """A pydantic error as one readable sentence (our validators' text already is one)."""
    message = str(detail["msg"])
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    text = f"{message} (got {detail['input']!r})"
    hint = _HINTS.get(detail["type"])
    return f"{text}; {hint}" if hint else text


def _subject(workflow: object, step: str | None, field: str) -> str:
    text = f"workflow {workflow!r}"
    if step is not None:
        text += f", step {step!r}"
    return f"{text}, {field}" if field else text


def _names(value: Any) -> list[Any]:
    """A name or names as a list (``spawns="child"`` means one workflow, not five)."""
    return [value] if isinstance(value, str) else list(value or ())


def _snapshot(value: Any) -> Any:
    """``value`` with its dicts and lists copied, so later changes to them do not show."""
    if type(value) is dict:
        return {key: _snapshot(item) for key, item in value.items()}
    if type(value) is list:
        return [_snapshot(item) for item in value]
    return value


class _Declaration:
    """State of one declaration: the job, the problems so far, origins by spec path."""

    def __init__(self, job: WorkflowJob, service: str, image: str | None) -> None:
        self.job = job
        self.service = service
        self.image = image
        self.problems: list[Problem] = []
        self.steps: list[Fn[Any]] = []
        self.names: list[str] = []
        self.name_of: dict[int, str] = {}
        """Final step names by ``id()`` of the Fn, to resolve parents given as Fn objects."""
        self.trigger_origins: dict[str, list[str]] = {
            kind: [] for kind in ("events", "filteredEvents", "crons", "zonedCrons", "at")
        }

    def subject(self, step: str | None = None, field: str = "") -> str:
        return _subject(self.job.name, step, field)

    def add(self, origin: str, subject: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(origin, subject, message, fix))

    def run(self) -> DeclaredWorkflow:
        error = dns_label_error(self.job.name)
        if error is not None:
            self.add(self.job.origin, self.subject(field="name"), clean_message(error))
        self.steps = self._collect_steps()
        self.names = self._step_names()
        self.name_of = {id(fn): name for fn, name in zip(self.steps, self.names, strict=True)}
        bindings = [
            self._binding(step, name) for step, name in zip(self.steps, self.names, strict=True)
        ]
        key_binding, concurrency = self._concurrency()
        hooks = self._hooks()
        data = {
            "description": self.job.description,
            "service": self.service,
            "image": self.job.image or self.image,
            "serviceAccountName": self.job.service_account_name,
            "pool": None if self.job.pool == "" else self.job.pool,  # "": a Job per step
            "triggers": self._triggers(),
            "timeout": self.job.timeout,
            "concurrency": concurrency,
            "defaultPriority": self.job.default_priority,
            "steps": [
                self._step_data(step, b) for step, b in zip(self.steps, bindings, strict=True)
            ],
            "suspend": self.job.suspend,
            "failFast": self.job.fail_fast or None,
            **{hook.value: self._step_data(*found) for hook, found in hooks.items()},
            "ttlSecondsAfterFinished": self.job.ttl_seconds_after_finished,
            "historyLimit": self.job.history_limit,
            "spawns": _names(self.job.spawns) or None,
        }
        limit = self.job.concurrency
        return DeclaredWorkflow(
            name=self.job.name,
            service=self.service,
            origin=self.job.origin,
            steps=(*bindings, *(binding for _, binding in hooks.values())),
            key_function=key_binding,
            problems=tuple(self.problems),
            data=_snapshot({key: value for key, value in data.items() if value is not None}),
            step_origins=tuple(step.origin for step in self.steps),
            trigger_origins={kind: tuple(o) for kind, o in self.trigger_origins.items()},
            concurrency_origin=limit.origin if isinstance(limit, Concurrency) else None,
            input_model=getattr(self.job, "input_validator", None),
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

    def _hooks(self) -> dict[Hook, tuple[Fn[Any], StepBinding]]:
        """The on_failure, on_success and on_exit steps that are set."""
        found = {}
        for hook in Hook:
            step: object = getattr(self.job, hook.attribute)
            if step is None:
                continue
            if not isinstance(step, Fn):
                self.add(
                    self.job.origin,
                    self.subject(field=hook.attribute),
                    f"{step!r} is not a step",
                    f"wrap the function: {hook.attribute}=Fn(my_function)",
                )
                continue
            found[hook] = (step, self._binding(step, step.name))
        return found

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
        if step.wait is not None:
            return StepBinding(name, "", None, step.origin)  # no action: no pod
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
            "action": binding.action or None,
            "wait": step.wait,
            "parents": parents,
            "timeout": step.timeout,
            "retries": step.retries,
            "backoff": step.backoff,
            "image": step.image,
            "resources": step.resources,
            "pool": step.pool,  # "" kept: a Job of its own, over the workflow's pool
            "env": [{"name": name, "value": value} for name, value in step.env],
            "rateLimits": [self._rate_limit(step, binding, r) for r in step.rate_limits] or None,
            "parentRule": step.parent_rule,
            "skipIf": step.skip_if,
            "runIf": step.run_if,
            "forEach": step.for_each,
            "parallelism": step.parallelism,
            "continueOnItemFailure": step.continue_on_item_failure,
        }
        return {key: value for key, value in data.items() if value is not None}

    def _rate_limit(self, step: Fn[Any], binding: StepBinding, limit: object) -> Any:
        if isinstance(limit, RateLimit):
            return limit.data()
        self.add(
            step.origin,
            self.subject(binding.name, "rate limits"),
            f"{limit!r} is not a rate limit",
            "use RateLimit('name', limit=10, per='minute')",
        )
        return None

    def _triggers(self) -> dict[str, list[Any]]:
        values: dict[str, list[Any]] = {kind: [] for kind in self.trigger_origins}
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
            parts: dict[str, tuple[Any, ...]] = {
                "events": trigger.events,
                "crons": trigger.crons,
                "at": trigger.at,
                "filteredEvents": tuple(
                    {"key": key, "filter": text} for key, text in trigger.filtered_events
                ),
                "zonedCrons": tuple(
                    {"schedule": cron, "timeZone": zone} for cron, zone in trigger.zoned_crons
                ),
            }
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
        data: dict[str, Any] = {"maxRuns": limit.limit, "limitStrategy": limit.strategy_data}
        if limit.cel is not None:
            data["expression"] = limit.cel
        if limit.limit_expression is not None:
            data["maxRunsExpression"] = limit.limit_expression
        if limit.total is not None:
            data["maxRunsTotal"] = limit.total
        if limit.timeout is not None:
            data["queueTimeout"] = limit.timeout
        if limit.shared_name is not None:
            data["shared"] = limit.shared_name
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
