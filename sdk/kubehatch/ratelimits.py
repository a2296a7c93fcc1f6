"""Rate limits: how many units steps may take per window, shared by every step (of any
workflow in the namespace) that names the same key::

    Fn(call_model).add_rate_limit(RateLimit("openai-api", limit=60, per="minute"))
    Fn(send).add_rate_limit(RateLimit(dynamic_key="input.user_id", limit=2, per="10s"))

An attempt over a limit waits (its step stays Pending, saying until when); it never fails.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kubehatch.durations import format_duration

_WORDS = {"second": "1s", "minute": "1m", "hour": "1h", "day": "24h"}


class RateLimit:
    """Units one attempt of a step takes from a named limit of ``limit`` units ``per`` window."""

    def __init__(
        self,
        key: str | None = None,
        *,
        dynamic_key: str | None = None,
        units: int = 1,
        limit: int,
        per: str | timedelta = "minute",
    ) -> None:
        """
        :param key: the limit's name, e.g. "openai-api".
        :param dynamic_key: instead of ``key``, CEL over ``input`` and
            ``additional_metadata`` giving the key per run, e.g. "input.user_id".
        :param units: units each attempt takes.
        :param limit: units allowed per window.
        :param per: the window: "second", "minute", "hour", a duration ("10s") or a timedelta.
        """
        self.key = key
        self.dynamic_key = dynamic_key
        self.units = units
        self.limit = limit
        self.per = per

    @property
    def duration(self) -> str:
        if isinstance(self.per, timedelta):
            return format_duration(self.per)
        return _WORDS.get(self.per, self.per)

    def data(self) -> dict[str, Any]:
        """As a step spec's ``rateLimits`` entry takes it (checked when the worker is)."""
        data: dict[str, Any] = {"units": self.units, "limit": self.limit, "duration": self.duration}
        if self.key is not None:
            data["key"] = self.key
        if self.dynamic_key is not None:
            data["keyExpression"] = self.dynamic_key
        return data

    def __repr__(self) -> str:
        key = f"{self.key!r}" if self.key is not None else f"dynamic_key={self.dynamic_key!r}"
        return f"RateLimit({key}, units={self.units}, limit={self.limit}, per={self.duration!r})"
