"""How runs and steps queue: the concurrency limit, its strategies, run priorities and
rate limits.

The admission itself (who starts, waits or is cancelled) is the operator's
`kubehatch_operator.admission`; this module is the API it reads.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Self

from pydantic import ConfigDict, Field, model_validator

from kubehatch.api.common import ApiModel, cel_rule, cel_rules
from kubehatch.api.fields import ActionName, CelExpression, DnsLabel, Duration
from kubehatch.durations import parse_duration

__all__ = [
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "ConcurrencySpec",
    "LimitStrategy",
    "RateLimitSpec",
]


class LimitStrategy(StrEnum):
    """What happens to a run that would exceed a concurrency limit."""

    CANCEL_IN_PROGRESS = "CancelInProgress"
    """Cancel the oldest running run of the group to make room for the new one."""
    CANCEL_NEWEST = "CancelNewest"
    """Cancel the new run; the running ones continue."""
    QUEUE_NEWEST = "QueueNewest"
    """Queue the new run until a slot in its group frees up."""
    GROUP_ROUND_ROBIN = "GroupRoundRobin"
    """Queue runs; with maxRunsTotal, free slots go to the groups in turn."""
    CANCEL_QUEUED_EXCEPT_NEWEST = "CancelQueuedExceptNewest"
    """Debounce: keep only the newest queued run of the group; cancel the other queued ones."""
    CANCEL_QUEUED_EXCEPT_OLDEST = "CancelQueuedExceptOldest"
    """Keep only the oldest queued run of the group; cancel the newer queued ones."""

    @property
    def queues(self) -> bool:
        """Whether runs over the limit wait (rather than one side being cancelled at once)."""
        return self not in (LimitStrategy.CANCEL_IN_PROGRESS, LimitStrategy.CANCEL_NEWEST)


MIN_PRIORITY, MAX_PRIORITY = 1, 3
"""Run priorities, as Hatchet's: 3 starts before 2 before 1 among queued runs."""


class ConcurrencySpec(ApiModel):
    """Limits how many runs of the workflow run at once per concurrency key."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel_rule(
                "has(self.expression) != has(self.action)",
                "set exactly one of expression (CEL over the input) or action (a key function)",
            ),
            cel_rule(
                "!has(self.maxRuns) || self.maxRuns >= 1",
                "maxRuns must be at least 1",
                field_path=".maxRuns",
            ),
            cel_rule(
                "!has(self.maxRunsTotal) || !has(self.limitStrategy) || "
                "!(self.limitStrategy in ['CancelInProgress', 'CancelNewest'])",
                "maxRunsTotal needs a strategy that queues (QueueNewest, GroupRoundRobin, "
                "CancelQueuedExceptNewest or CancelQueuedExceptOldest)",
                field_path=".maxRunsTotal",
            ),
        )
    )

    expression: CelExpression | None = Field(
        default=None,
        description=(
            "CEL expression over `input` and `additional_metadata` giving the key, "
            "e.g. input.user_id."
        ),
    )
    action: ActionName | None = Field(
        default=None, description="Registered action that computes the key from the input."
    )
    max_runs: int = Field(default=1, ge=1, description="Runs allowed at once per key (at least 1).")
    max_runs_expression: CelExpression | None = Field(
        default=None,
        description=(
            "CEL over `input` and `additional_metadata` giving the runs allowed at once per "
            "key instead of maxRuns, e.g. input.tier == 'premium' ? 10 : 1; the newest run "
            "of a key sets the key's limit."
        ),
    )
    max_runs_total: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Runs allowed at once across all keys; with GroupRoundRobin the free slots go "
            "to the keys in turn, otherwise in queue order."
        ),
    )
    limit_strategy: LimitStrategy = Field(
        default=LimitStrategy.CANCEL_IN_PROGRESS,
        description="What to do with a run over the limit.",
    )
    queue_timeout: Duration | None = Field(
        default=None,
        description=(
            "Cancel a run that waited this long for a slot (from its creation, or its "
            "scheduledAt), e.g. 10m."
        ),
    )
    shared: DnsLabel | None = Field(
        default=None,
        description=(
            "Name of a limit shared by every Workflow of the namespace that names it: their "
            "runs of one key count together. Their limits must be the same (maxRuns, "
            "maxRunsExpression, maxRunsTotal, limitStrategy, queueTimeout)."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.expression is None) == (self.action is None):
            raise ValueError(
                "set exactly one of expression (CEL over the input, e.g. 'input.user_id') "
                "or action (a registered key function)"
            )
        if self.max_runs_total is not None and not self.limit_strategy.queues:
            raise ValueError(
                f"maxRunsTotal cannot be used with limitStrategy {self.limit_strategy.value}: "
                "it needs a strategy that queues (QueueNewest, GroupRoundRobin, "
                "CancelQueuedExceptNewest or CancelQueuedExceptOldest)"
            )
        return self

    @property
    def per_key(self) -> bool:
        """Whether each key's slots are apart (no cap across keys): admission of one key
        never looks at another's runs."""
        return self.max_runs_total is None

    @property
    def policy(self) -> tuple[object, ...]:
        """What Workflows sharing a limit must agree on."""
        return (
            self.max_runs,
            self.max_runs_expression,
            self.max_runs_total,
            self.limit_strategy,
            self.queue_timeout,
        )

    @property
    def queue_timeout_delta(self) -> timedelta | None:
        return parse_duration(self.queue_timeout) if self.queue_timeout else None


MAX_RATE_WINDOW = timedelta(hours=24)
"""The longest window of a rate limit: the operator keeps a day of units taken."""


class RateLimitSpec(ApiModel):
    """Units a step's attempt takes from a rate limit shared by every step (of any workflow
    in the namespace) that names the same key; an attempt over the limit waits."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel_rule(
                "has(self.key) != has(self.keyExpression)",
                "set exactly one of key (a fixed name) or keyExpression (CEL over the input)",
            ),
            cel_rule(
                "!has(self.units) || self.units <= self.limit",
                "units must not exceed limit: such an attempt could never start",
                field_path=".units",
            ),
        )
    )

    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="The limit's name, e.g. openai-api.",
    )
    key_expression: CelExpression | None = Field(
        default=None,
        description=(
            "CEL over `input` and `additional_metadata` giving the key per run, e.g. "
            "input.user_id (one limit per user)."
        ),
    )
    units: int = Field(default=1, ge=1, description="Units each attempt takes.")
    limit: int = Field(ge=1, description="Units allowed per duration.")
    duration: Duration = Field(
        description="The window the limit counts in: 1s, 1m, 1h, or any duration like 10s."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.key is None) == (self.key_expression is None):
            raise ValueError(
                "set exactly one of key (a fixed name, e.g. 'openai-api') or keyExpression "
                "(CEL over the input, e.g. 'input.user_id')"
            )
        if parse_duration(self.duration) > MAX_RATE_WINDOW:
            raise ValueError(f"duration {self.duration} is longer than the longest window, 24h")
        if self.units > self.limit:
            raise ValueError(
                f"units ({self.units}) exceed limit ({self.limit}): such an attempt could "
                "never start; raise the limit or take fewer units"
            )
        return self

    @property
    def window(self) -> timedelta:
        return parse_duration(self.duration)
