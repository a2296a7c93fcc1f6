"""The Workflow kind: a DAG of steps, its triggers and its concurrency policy.

The concurrency types live in `kubehatch.api.queueing` and are re-exported here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Self

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from kubehatch.api import wire
from kubehatch.api.common import (
    ApiModel,
    Conditions,
    StatusModel,
    cel_rule,
    cel_rules,
)
from kubehatch.api.container import EnvVar, ResourceRequirements
from kubehatch.api.fields import (
    ActionName,
    CronSchedule,
    DnsLabel,
    Duration,
    EventKey,
    WorkerRef,
)
from kubehatch.api.graph import FieldProblem, step_graph_problems
from kubehatch.api.queueing import (  # re-exported: the Workflow's API in one import
    MAX_PRIORITY,
    MIN_PRIORITY,
    ConcurrencySpec,
    LimitStrategy,
    RateLimitSpec,
)
from kubehatch.api.resource import AGE_COLUMN, PrinterColumn, Resource, ResourceInfo
from kubehatch.durations import parse_duration

__all__ = [
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "Backoff",
    "ConcurrencySpec",
    "LimitStrategy",
    "RateLimitSpec",
    "StepSpec",
    "Triggers",
    "Workflow",
    "WorkflowSpec",
    "WorkflowStatus",
]

MAX_STEPS = 50
"""Bounds the CEL rules' cost (the API server refuses unbounded lists) and the status size."""
MAX_PARENTS = 10
MAX_RATE_LIMITS = 5


class SpecProblems(ValueError):
    """Several problems in one spec; pydantic keeps this object in the error's ``ctx``."""

    def __init__(self, what: str, problems: list[FieldProblem]) -> None:
        self.problems = problems
        listing = "; ".join(str(problem) for problem in problems)
        super().__init__(f"{what} is invalid: {listing}")


class Backoff(ApiModel):
    """Delay between retries: ``initial``, multiplied by ``multiplier`` each time, up to ``max``.

    The factor is an integer on purpose: floats do not round-trip reliably through
    YAML and the API conventions advise against them.
    """

    initial: Duration = Field(default="10s", description="Delay before the first retry.")
    multiplier: int = Field(
        default=2, ge=1, le=10, description="Factor applied to the delay after each retry."
    )
    max: Duration = Field(default="5m", description="Upper bound for any delay.")

    def delay(self, retry: int) -> timedelta:
        """The delay before retry number ``retry`` (1 for the first retry)."""
        delay, ceiling = parse_duration(self.initial), parse_duration(self.max)
        for _ in range(max(retry - 1, 0)):
            if delay >= ceiling:
                break
            delay *= self.multiplier  # stays below ten years times ten: no overflow
        return min(delay, ceiling)


class StepSpec(ApiModel):
    """One step: an action run in its own container once all its parents succeeded."""

    name: DnsLabel = Field(description="Step name, unique within the workflow.")
    action: ActionName = Field(
        description="Registered action to run: 'service:action', or 'action' within spec.service."
    )
    parents: list[DnsLabel] = Field(
        default_factory=list,
        max_length=MAX_PARENTS,
        description="Steps that must succeed first; their outputs are passed to this step.",
    )
    timeout: Duration | None = Field(
        default=None,
        description=(
            "Longest time one attempt may run, e.g. 30s or 5m, counted from the start of its "
            "code (scheduling and image pulls do not count)."
        ),
    )
    start_timeout: Duration | None = Field(
        default=None,
        description=(
            "Longest time an attempt's pod may take to start (scheduling, image pull); "
            "default 10m. An attempt that does not start in time fails, and is retried "
            "when the step has retries left."
        ),
    )
    retries: int = Field(
        default=0, ge=0, le=100, description="How many times a failed attempt is retried."
    )
    backoff: Backoff | None = Field(
        default=None, description="Delay between retries (default: 10s doubling up to 5m)."
    )
    image: str | None = Field(
        default=None, min_length=1, description="Container image; defaults to spec.image."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Container resource requests and limits."
    )
    env: list[EnvVar] = Field(
        default_factory=list, description="Extra environment variables for the container."
    )
    rate_limits: list[RateLimitSpec] = Field(
        default_factory=list,
        max_length=MAX_RATE_LIMITS,
        description="Rate limits each attempt takes units of; over a limit, it waits.",
    )


class Triggers(ApiModel):
    """What starts a run besides a manual WorkflowRun: events, cron schedules, fixed times."""

    events: list[EventKey] = Field(
        default_factory=list, description="Event keys (e.g. user:created) that start a run."
    )
    crons: list[CronSchedule] = Field(
        default_factory=list, description="Cron schedules (five fields, UTC) that start a run."
    )
    at: list[AwareDatetime] = Field(
        default_factory=list, description="RFC 3339 times at which to start one run each."
    )


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
        "has(self.service) || self.steps.all(s, s.action.contains(':'))",
        "set spec.service or write every step's action as 'service:action'",
        field_path=".steps",
    ),
    cel_rule(
        "has(self.image) || self.steps.all(s, has(s.image))",
        "set spec.image or an image on every step",
        field_path=".steps",
    ),
    cel_rule(
        "!has(self.onFailure) || has(self.service) || self.onFailure.action.contains(':')",
        "set spec.service or write the onFailure action as 'service:action'",
        field_path=".onFailure.action",
    ),
    cel_rule(
        "!has(self.onFailure) || has(self.image) || has(self.onFailure.image)",
        "set spec.image or an image on the onFailure step",
        field_path=".onFailure.image",
    ),
    cel_rule(
        "!has(self.onFailure) || !self.steps.exists(s, s.name == self.onFailure.name)",
        "onFailure needs a name of its own, no step's",
        field_path=".onFailure.name",
    ),
    cel_rule(
        "!has(self.onFailure) || !has(self.onFailure.parents) || size(self.onFailure.parents) == 0",
        "onFailure runs once the other steps are done; it takes no parents",
        field_path=".onFailure.parents",
    ),
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
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete finished runs after this many seconds."
    )
    history_limit: int | None = Field(
        default=None, ge=0, description="Finished runs kept per workflow; older ones are deleted."
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
    def all_steps(self) -> list[StepSpec]:
        """The steps, then the on-failure step if there is one."""
        return [*self.steps, self.on_failure] if self.on_failure is not None else self.steps

    def problems(self) -> list[FieldProblem]:
        """Everything wrong across fields (the CEL rules, plus cycles the API server can't see)."""
        problems = step_graph_problems([(step.name, step.parents) for step in self.steps])
        hook = self.on_failure
        if hook is not None and any(step.name == hook.name for step in self.steps):
            problems.append(
                FieldProblem(("onFailure", "name"), f"{hook.name!r} is a step's name already")
            )
        if hook is not None and hook.parents:
            problems.append(
                FieldProblem(
                    ("onFailure", "parents"),
                    "onFailure runs once the other steps are done; it takes no parents",
                )
            )
        placed: list[tuple[tuple[str | int, ...], StepSpec]] = [
            (("steps", index), step) for index, step in enumerate(self.steps)
        ]
        if hook is not None:
            placed.append((("onFailure",), hook))
        for where, step in placed:
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
        return step.action if ":" in step.action else f"{self.service}:{step.action}"

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
