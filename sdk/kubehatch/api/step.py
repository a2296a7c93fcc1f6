"""One step of a Workflow: what it runs, when it may run, and how it is retried."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import Field

from kubehatch.api.common import ApiModel
from kubehatch.api.container import EnvVar, ResourceRequirements
from kubehatch.api.fields import ActionName, CelExpression, DnsLabel, Duration
from kubehatch.api.queueing import RateLimitSpec
from kubehatch.durations import parse_duration

MAX_PARENTS = 10
MAX_RATE_LIMITS = 5


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


class ParentRule(StrEnum):
    """When a step with parents may run (Argo's ``depends``, Airflow's trigger rules)."""

    ALL_SUCCEEDED = "AllSucceeded"
    """Every parent succeeded (the default); a parent that failed or was skipped skips it."""
    ALL_DONE = "AllDone"
    """Every parent finished, whatever the outcome: for cleanups and joins after a condition."""
    ANY_SUCCEEDED = "AnySucceeded"
    """Every parent finished and at least one succeeded: for a join after branches of which
    conditions pick some."""


class StepSpec(ApiModel):
    """One step: an action run in its own container once its parents are done."""

    name: DnsLabel = Field(description="Step name, unique within the workflow.")
    action: ActionName = Field(
        description="Registered action to run: 'service:action', or 'action' within spec.service."
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
    env: list[EnvVar] = Field(
        default_factory=list, description="Extra environment variables for the container."
    )
    rate_limits: list[RateLimitSpec] = Field(
        default_factory=list,
        max_length=MAX_RATE_LIMITS,
        description="Rate limits each attempt takes units of; over a limit, it waits.",
    )
