"""The Workflow kind: a DAG of steps, its triggers and its concurrency policy.

The concurrency types live in `kubehatch.api.queueing` and are re-exported here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import ConfigDict, Field, model_validator

from kubehatch.api import wire
from kubehatch.api.common import (
    ApiModel,
    Conditions,
    StatusModel,
    cel_rule,
    cel_rules,
)
from kubehatch.api.fields import (
    DnsLabel,
    Duration,
    PoolName,
    WorkerRef,
)
from kubehatch.api.graph import FieldProblem, step_graph_problems
from kubehatch.api.hooks import Hook
from kubehatch.api.inputschema import InputSchema
from kubehatch.api.queueing import (  # re-exported: the Workflow's API in one import
    MAX_PRIORITY,
    MIN_PRIORITY,
    ConcurrencySpec,
    LimitStrategy,
    RateLimitSpec,
)
from kubehatch.api.resource import AGE_COLUMN, PrinterColumn, Resource, ResourceInfo
from kubehatch.api.step import MAX_PARENTS, Backoff, ParentRule, StepSpec  # re-exported
from kubehatch.api.triggerspec import CronTimes, Triggers

__all__ = [
    "MAX_PARENTS",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "Backoff",
    "ConcurrencySpec",
    "Hook",
    "LimitStrategy",
    "ParentRule",
    "RateLimitSpec",
    "StepSpec",
    "Triggers",
    "Workflow",
    "WorkflowSpec",
    "WorkflowStatus",
]

MAX_STEPS = 50
"""Bounds the CEL rules' cost (the API server refuses unbounded lists) and the status size."""


class SpecProblems(ValueError):
    """Several problems in one spec; pydantic keeps this object in the error's ``ctx``."""

    def __init__(self, what: str, problems: list[FieldProblem]) -> None:
        self.problems = problems
        listing = "; ".join(str(problem) for problem in problems)
        super().__init__(f"{what} is invalid: {listing}")


def _hook_rules(field: str) -> list[dict[str, str]]:
    """The CEL rules of one hook step (the same for each hook)."""
    others = [hook.value for hook in Hook if hook.value != field]
    return [
        cel_rule(
            f"!has(self.{field}) || !has(self.{field}.action) || has(self.service) || "
            f"self.{field}.action.contains(':')",
            f"set spec.service or write the {field} action as 'service:action'",
            field_path=f".{field}.action",
        ),
        cel_rule(
            f"!has(self.{field}) || has(self.image) || has(self.{field}.image) || "
            f"has(self.{field}.wait)",
            f"set spec.image or an image on the {field} step",
            field_path=f".{field}.image",
        ),
        cel_rule(
            f"!has(self.{field}) || (!self.steps.exists(s, s.name == self.{field}.name)"
            + "".join(f" && (!has(self.{o}) || self.{o}.name != self.{field}.name)" for o in others)
            + ")",
            f"{field} needs a name of its own, no other step's",
            field_path=f".{field}.name",
        ),
        cel_rule(
            f"!has(self.{field}) || !has(self.{field}.parents) || size(self.{field}.parents) == 0",
            f"{field} runs once the other steps are done; it takes no parents",
            field_path=f".{field}.parents",
        ),
    ]


_SPEC_RULES = cel_rules(
    cel_rule(
        "self.steps.all(s, self.steps.exists_one(t, t.name == s.name))",
        "step names must be unique within a workflow",
        field_path=".steps",
    ),
    # Two rules rather than one: the API server's cost estimate for a combined rule
    # exceeds its budget at these list bounds.
    cel_rule(
        "self.steps.all(s, !has(s.parents) || s.parents.all(p, self.steps.exists(t, t.name == p)))",
        "every parent must name another step of this workflow",
        field_path=".steps",
    ),
    cel_rule(
        "self.steps.all(s, !has(s.parents) || !(s.name in s.parents))",
        "a step cannot be its own parent",
        field_path=".steps",
    ),
    cel_rule(
        "has(self.service) || self.steps.all(s, !has(s.action) || s.action.contains(':'))",
        "set spec.service or write every step's action as 'service:action'",
        field_path=".steps",
    ),
    cel_rule(
        "has(self.image) || self.steps.all(s, has(s.image) || has(s.wait))",
        "set spec.image or an image on every step",
        field_path=".steps",
    ),
    *(rule for hook in Hook for rule in _hook_rules(hook.value)),
)


class WorkflowSpec(ApiModel):
    """The desired workflow: its steps, what triggers it and how its runs are limited."""

    model_config = ConfigDict(json_schema_extra=_SPEC_RULES)

    description: str | None = Field(default=None, description="What the workflow does.")
    service: DnsLabel | None = Field(
        default=None, description="Service the workflow belongs to; qualifies bare actions."
    )
    image: str | None = Field(
        default=None, min_length=1, description="Default container image of the steps."
    )
    worker: WorkerRef | None = Field(
        default=None,
        description=(
            "Where step pods import the Worker that registers the actions, as "
            "'module:attribute'; defaults to the image's KUBEHATCH_WORKER variable."
        ),
    )
    service_account_name: str | None = Field(
        default=None, min_length=1, description="ServiceAccount the step pods run as."
    )
    pool: PoolName | None = Field(
        default=None,
        description=(
            "Run the steps on this WorkerPool's warm workers (in the run's namespace) instead "
            "of a Job per step; a step's own pool overrides it ('' there: a Job)."
        ),
    )
    triggers: Triggers = Field(
        default_factory=Triggers, description="Events, cron schedules and times that start runs."
    )
    timeout: Duration | None = Field(
        default=None, description="Longest time a whole run may take, e.g. 1h."
    )
    concurrency: ConcurrencySpec | None = Field(
        default=None, description="Limit on concurrent runs, per key."
    )
    default_priority: int | None = Field(
        default=None,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description=(
            "Priority of runs that set none (1 low, the default, to 3 high): among queued "
            "runs the higher priority starts first."
        ),
    )
    steps: list[StepSpec] = Field(
        min_length=1, max_length=MAX_STEPS, description="The steps, a DAG through their parents."
    )
    on_failure: StepSpec | None = Field(
        default=None,
        description=(
            "A step run once every other step is done when one of them failed (after its "
            "retries); it reads the failures with ctx.step_run_errors(). The run stays Failed."
        ),
    )
    on_success: StepSpec | None = Field(
        default=None,
        description="A step run once every other step is done when none of them failed.",
    )
    on_exit: StepSpec | None = Field(
        default=None,
        description=(
            "A step run last, whether the run failed or not (after onFailure or onSuccess), "
            "e.g. to clean up; ctx.step_run_errors() tells what failed. Not run for a run "
            "that was cancelled or timed out."
        ),
    )
    suspend: bool = Field(
        default=False, description="True stops cron, schedule and event triggers; manual runs work."
    )
    fail_fast: bool = Field(
        default=False,
        description=(
            "True ends a run at its first failed step (running steps stop, pending ones are "
            "skipped); by default a failure stops only the steps that depend on it."
        ),
    )
    spawns: list[DnsLabel] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "Workflows whose runs this workflow's steps may start as child runs "
            "(ctx.spawn in a step); a step that asks for any other fails. The operator "
            "creates the child runs, owned by the run; the step waits for their results "
            "without a pod."
        ),
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete finished runs after this many seconds."
    )
    history_limit: int | None = Field(
        default=None, ge=0, description="Finished runs kept per workflow; older ones are deleted."
    )
    input_schema: InputSchema | None = Field(
        default=None,
        description=(
            "JSON Schema (draft 2020-12) of the runs' input, generated from the input model; "
            "a run whose input does not fit fails with reason InvalidInput."
        ),
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        problems = self.problems()
        if problems:
            raise SpecProblems("workflow spec", problems)
        return self

    def run_priority(self, priority: int | None) -> int:
        """A run's priority: its own, else the Workflow's default, else the lowest."""
        return priority or self.default_priority or MIN_PRIORITY

    @property
    def hooks(self) -> list[tuple[Hook, StepSpec]]:
        """The hook steps this workflow has, in the order they may run."""
        found = ((hook, getattr(self, hook.attribute)) for hook in Hook)
        return [(hook, step) for hook, step in found if step is not None]

    @property
    def all_steps(self) -> list[StepSpec]:
        """The steps, then the hook steps."""
        return [*self.steps, *(step for _, step in self.hooks)]

    def problems(self) -> list[FieldProblem]:
        """Everything wrong across fields (the CEL rules, plus cycles the API server can't see)."""
        problems = step_graph_problems([(step.name, step.parents) for step in self.steps])
        seen = {step.name for step in self.steps}
        for hook, step in self.hooks:
            if step.name in seen:
                problems.append(
                    FieldProblem((hook.value, "name"), f"{step.name!r} is another step's name")
                )
            seen.add(step.name)
            if step.parents:
                problems.append(
                    FieldProblem(
                        (hook.value, "parents"),
                        f"{hook.value} runs once the other steps are done; it takes no parents",
                    )
                )
        placed: list[tuple[tuple[str | int, ...], StepSpec]] = [
            (("steps", index), step) for index, step in enumerate(self.steps)
        ]
        placed += [((hook.value,), step) for hook, step in self.hooks]
        for where, step in placed:
            if step.action is None:
                continue  # a wait: no action, no image
            if self.service is None and ":" not in step.action:
                problems.append(
                    FieldProblem(
                        (*where, "action"),
                        f"action {step.action!r} has no service; write 'service:{step.action}' "
                        "or set spec.service",
                    )
                )
            if self.image is None and step.image is None:
                problems.append(
                    FieldProblem(
                        (*where, "image"),
                        "no image for this step; set spec.image or the step's image",
                    )
                )
        return problems

    def get_step(self, name: str) -> StepSpec:
        """The step called ``name`` (``KeyError`` naming the known steps otherwise)."""
        for step in self.all_steps:
            if step.name == name:
                return step
        known = ", ".join(step.name for step in self.all_steps)
        raise KeyError(f"workflow has no step {name!r} (steps: {known})")

    def qualified_action(self, step: StepSpec) -> str:
        """The step's action as 'service:action', qualified with ``service`` if bare."""
        if step.action is None:
            raise ValueError(f"step {step.name!r} waits: it runs no action")
        return step.action if ":" in step.action else f"{self.service}:{step.action}"

    def step_pool(self, step: StepSpec) -> str | None:
        """The WorkerPool that runs the step (its own, else the workflow's), or None: a Job."""
        pool = step.pool if step.pool is not None else self.pool
        return pool or None

    def step_image(self, step: StepSpec) -> str:
        """The image the step runs in (its own, else the workflow's)."""
        image = step.image or self.image
        if image is None:  # prevented by validation; kept for type checkers
            raise ValueError(f"step {step.name!r} has no image")
        return image


class WorkflowStatus(StatusModel):
    """What the operator observed about the workflow."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )
    conditions: Conditions
    next_schedule_times: list[datetime] = Field(
        default_factory=list, description="Upcoming cron and schedule trigger times."
    )
    cron_schedules: list[CronTimes] = Field(
        default_factory=list,
        description="The next times of each cron schedule, in the schedule's time zone.",
    )
    last_triggered: dict[str, str] = Field(
        default_factory=dict,
        description="Per trigger (e.g. cron:0 * * * *), the last run it created.",
    )


class Workflow(Resource):
    """A workflow definition, usually rendered from Python with ``kubehatch render``."""

    info = ResourceInfo(
        kind="Workflow",
        plural=wire.WORKFLOWS,
        short_names=("wf",),
        description="A workflow: steps in a DAG, their triggers and concurrency limits.",
        columns=(
            PrinterColumn("Service", "string", ".spec.service"),
            PrinterColumn("Suspended", "boolean", ".spec.suspend"),
            PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn(
                "Next", "date", ".status.nextScheduleTimes[0]", "Next scheduled run", priority=1
            ),
            AGE_COLUMN,
        ),
    )

    spec: WorkflowSpec = Field(description="The desired workflow.")
    status: WorkflowStatus | None = Field(default=None, description="Observed state.")
