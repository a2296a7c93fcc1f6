"""One step of a Workflow: what it runs, when it may run, and how it is retried."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Self

from pydantic import ConfigDict, Field, model_validator

from kubehatch.api.common import ApiModel, cel_rule, cel_rules
from kubehatch.api.container import EnvVar, ResourceRequirements
from kubehatch.api.fields import (
    ActionName,
    CelExpression,
    DnsLabel,
    Duration,
    EventKey,
    PoolName,
)
from kubehatch.api.queueing import RateLimitSpec
from kubehatch.durations import parse_duration

MAX_PARENTS = 10
MAX_RATE_LIMITS = 5
MAX_ITEMS = 1000
"""Items of one forEach step: each is a Job, and the run's status only counts them."""


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


class ApprovalWait(ApiModel):
    """Wait for a person to approve (or reject) the step."""

    message: str | None = Field(
        default=None, max_length=1024, description="What the approver is asked, shown to them."
    )


class ParentRule(StrEnum):
    """When a step with parents may run (Argo's ``depends``, Airflow's trigger rules)."""

    ALL_SUCCEEDED = "AllSucceeded"
    """Every parent succeeded (the default); a parent that failed or was skipped skips it."""
    ALL_DONE = "AllDone"
    """Every parent finished, whatever the outcome: for cleanups and joins after a condition."""
    ANY_SUCCEEDED = "AnySucceeded"
    """Every parent finished and at least one succeeded: for a join after branches of which
    conditions pick some."""


class OnTimeout(StrEnum):
    """What a wait that times out does."""

    FAIL = "Fail"
    """The step is TimedOut (the run fails, unless a parentRule or a hook says otherwise)."""
    CONTINUE = "Continue"
    """The step succeeds with the output {"timedOut": true}: the default branch."""


class EventWait(ApiModel):
    """Wait for a WorkflowEvent."""

    key: EventKey = Field(description="The event key, e.g. order:paid; a trailing * matches more.")
    filter: CelExpression | None = Field(
        default=None,
        description=(
            "CEL over `event` (key, data, metadata) with `input` and `parents` bound, e.g. "
            "event.data.order_id == input.order_id; events for which it is false are ignored."
        ),
    )
    lookback: Duration | None = Field(
        default=None,
        description=(
            "Events that arrived up to this long before the wait began count too (at most "
            "24h; the operator keeps recent events in memory)."
        ),
    )


class WaitSpec(ApiModel):
    """A step that waits without a pod: for a time, an event or a person's approval. Set
    exactly one of sleep, until, event and approval."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel_rule(
                "[has(self.sleep), has(self.until), has(self.event), has(self.approval)]"
                ".filter(x, x).size() == 1",
                "set exactly one of sleep, until, event and approval",
            )
        )
    )

    sleep: Duration | None = Field(default=None, description="Wait this long, e.g. 1h.")
    until: CelExpression | None = Field(
        default=None,
        description=(
            "Wait until the RFC 3339 time this CEL expression gives (over `input`, "
            "`parents`, `additional_metadata`), e.g. input.send_at."
        ),
    )
    event: EventWait | None = Field(
        default=None,
        description="Wait for an event; its key, data and metadata become the step's output.",
    )
    approval: ApprovalWait | None = Field(
        default=None,
        description=(
            "Wait for a person: kubehatch approve RUN STEP (or --reject) creates a "
            "WorkflowApproval; who may approve is who may create those (RBAC)."
        ),
    )
    timeout: Duration | None = Field(
        default=None, description="Give up after this long (see onTimeout); default: never."
    )
    on_timeout: OnTimeout | None = Field(
        default=None, description='Fail (the default) or Continue with {"timedOut": true}.'
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [self.sleep, self.until, self.event, self.approval]
        if sum(kind is not None for kind in kinds) != 1:
            raise ValueError("set exactly one of sleep, until, event and approval")
        return self

    @property
    def kind(self) -> str:
        """What the step waits for, in words, for messages."""
        if self.sleep is not None:
            return f"sleeping {self.sleep}"
        if self.until is not None:
            return f"waiting until {self.until}"
        if self.event is not None:
            return f"waiting for an event {self.event.key!r}"
        return "waiting for approval (kubehatch approve RUN STEP)"


class StepSpec(ApiModel):
    """One step: an action run in its own container once its parents are done, or a wait."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel_rule(
                "has(self.action) != has(self.wait)",
                "a step runs an action or waits: set exactly one of action and wait",
            )
        )
    )

    name: DnsLabel = Field(description="Step name, unique within the workflow.")
    action: ActionName | None = Field(
        default=None,
        description="Registered action to run: 'service:action', or 'action' within spec.service.",
    )
    wait: WaitSpec | None = Field(
        default=None,
        description="Instead of an action: wait, without a pod, for a time, an event or a person.",
    )
    parents: list[DnsLabel] = Field(
        default_factory=list,
        max_length=MAX_PARENTS,
        description=(
            "Steps that must finish first (see parentRule); the outputs of those that "
            "succeeded are passed to this step."
        ),
    )
    parent_rule: ParentRule | None = Field(
        default=None,
        description=(
            "When the step may run: AllSucceeded (every parent succeeded; the default), "
            "AllDone (every parent finished, whatever the outcome) or AnySucceeded (every "
            "parent finished, at least one succeeded). Otherwise the step is Skipped."
        ),
    )
    skip_if: CelExpression | None = Field(
        default=None,
        description=(
            "CEL over `input`, `parents` (outputs of the parents that succeeded, by name) and "
            "`additional_metadata`, evaluated when the step is ready: true skips the step "
            "(and the steps that need it), e.g. parents.check.amount > 100."
        ),
    )
    for_each: CelExpression | None = Field(
        default=None,
        description=(
            "CEL giving a list (over `input`, `parents` and `additional_metadata`, like "
            "skipIf; or a literal such as [1, 2, 3]): the step runs once per item, each "
            f"item a Job of its own with its own attempts (at most {MAX_ITEMS} items). "
            "Its output is the list of the items' outputs, in order."
        ),
    )
    parallelism: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ITEMS,
        description="With forEach: at most this many items run at once (default: all).",
    )
    continue_on_item_failure: bool | None = Field(
        default=None,
        description=(
            "With forEach: an item that fails (after its retries) leaves null in the output "
            "and the others go on; by default it fails the step and stops the others."
        ),
    )
    run_if: CelExpression | None = Field(
        default=None,
        description=("Like skipIf, the other way round: the step runs only when it is true."),
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
    pool: PoolName | None = Field(
        default=None,
        description=(
            "The WorkerPool that runs this step, over the workflow's spec.pool; '' runs it "
            "in a Job of its own (its image, resources and env apply only then)."
        ),
    )
    env: list[EnvVar] = Field(
        default_factory=list, description="Extra environment variables for the container."
    )
    rate_limits: list[RateLimitSpec] = Field(
        default_factory=list,
        max_length=MAX_RATE_LIMITS,
        description="Rate limits each attempt takes units of; over a limit, it waits.",
    )

    @model_validator(mode="after")
    def _action_or_wait(self) -> Self:
        if (self.action is None) == (self.wait is None):
            raise ValueError(
                f"step {self.name!r}: set exactly one of action (a step that runs) and wait "
                "(a step that waits)"
            )
        return self

    @property
    def waits(self) -> bool:
        """A step without a pod: it waits for a time, an event or a person."""
        return self.wait is not None
