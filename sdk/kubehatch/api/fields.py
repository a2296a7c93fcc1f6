"""Constrained scalar types shared by the API models.

Each type validates in Python with an error that quotes the bad value and says what a
good one looks like, and carries an explicit JSON schema so that the generated CRD
enforces the same rule (a pattern the API server understands: RE2, no look-arounds).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any

from annotated_types import GroupedMetadata
from croniter import croniter
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from kubehatch.api.cel import check_expression
from kubehatch.durations import DURATION_PATTERN, format_duration, parse_duration

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
ACTION_PATTERN = rf"^({_LABEL}:)?{_LABEL}$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
EVENT_KEY_PATTERN = r"^\S+$"
_NUMBER = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY_PATTERN = rf"^(\+|-)?{_NUMBER}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_NUMBER}))?$"


def checked_string(
    what: str, pattern: str, *, max_length: int, hint: str, min_length: int = 1
) -> GroupedMetadata:
    """``Annotated[str, checked_string(...)]`` checks ``pattern`` and lengths with a helpful error.

    The metadata also carries the matching JSON schema; pydantic unpacks the group.
    """
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not (min_length <= len(value) <= max_length) or not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}: {hint}")
        return value

    schema: dict[str, Any] = {"type": "string", "pattern": pattern, "minLength": min_length}
    schema["maxLength"] = max_length
    return _Metadata((AfterValidator(check), WithJsonSchema(schema)))


class _Metadata(GroupedMetadata):
    """Several ``Annotated`` metadata items given as one."""

    def __init__(self, items: tuple[Any, ...]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)


DnsLabel = Annotated[
    str,
    checked_string(
        "name",
        DNS_LABEL_PATTERN,
        max_length=63,
        hint="use at most 63 lowercase letters, digits and '-', starting and ending with a "
        "letter or digit, e.g. 'step-one'",
    ),
]

PoolName = Annotated[
    str,
    checked_string(
        "worker pool name",
        r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
        max_length=63,
        min_length=0,
        hint="name a WorkerPool in the run's namespace (a DNS label, e.g. 'fast'), or give "
        "'' for a pod of its own",
    ),
]
"""A WorkerPool's name, or '' for a Job per step (a step's way out of its workflow's pool)."""

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

DnsSubdomain = Annotated[
    str,
    checked_string(
        "object name",
        DNS_SUBDOMAIN_PATTERN,
        max_length=253,
        hint="use lowercase letters, digits, '-' and '.', e.g. 'db-credentials'",
    ),
]

WorkerRef = Annotated[
    str,
    checked_string(
        "worker reference",
        r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)?$",
        max_length=253,
        hint="write 'package.module:attribute', e.g. 'myapp.workers:worker'",
    ),
]

ActionName = Annotated[
    str,
    checked_string(
        "action",
        ACTION_PATTERN,
        max_length=127,
        hint="write 'service:action' or just 'action', each part a lowercase name like "
        "'send-email'",
    ),
]

EnvVarName = Annotated[
    str,
    checked_string(
        "environment variable name",
        ENV_NAME_PATTERN,
        max_length=253,
        hint="use letters, digits, '_', '-' and '.', not starting with a digit",
    ),
]

EventKey = Annotated[
    str,
    checked_string(
        "event key",
        EVENT_KEY_PATTERN,
        max_length=253,
        hint="use a non-empty key without spaces, e.g. 'user:created'",
    ),
]


def _duration_from_timedelta(value: Any) -> Any:
    """Accept timedeltas from Python callers; the API itself stores strings."""
    return format_duration(value) if isinstance(value, timedelta) else value


def _check_duration(value: str) -> str:
    parse_duration(value)  # InvalidDurationError (a ValueError) says what is wrong
    return value


Duration = Annotated[
    str,
    BeforeValidator(_duration_from_timedelta),
    AfterValidator(_check_duration),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "minLength": 2, "maxLength": 32}
    ),
]
"""A duration such as "30s", "5m" or "1h30m" (a ``timedelta`` is accepted and converted)."""


def _check_cron(value: str) -> str:
    fields = value.split()
    if not (value.startswith("@") or len(fields) == 5) or not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is not a cron schedule: use five fields 'minute hour day-of-month "
            "month day-of-week' (e.g. '*/5 * * * *') or a macro such as '@hourly'"
        )
    return value


CronSchedule = Annotated[
    str,
    AfterValidator(_check_cron),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 128}),
]
"""A five-field cron schedule (checked with croniter, which the operator also uses)."""


def _check_cel(value: str) -> str:
    check_expression(value)
    return value


CelExpression = Annotated[
    str,
    AfterValidator(_check_cel),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 1024}),
]
"""A CEL expression (syntax-checked here; the operator evaluates it over ``input``)."""


def _quantity_to_string(value: Any) -> Any:
    """Kubernetes quantities may be written as numbers in YAML; store them as strings."""
    if isinstance(value, bool):
        return value  # let validation reject it rather than turning True into "True"
    return str(value) if isinstance(value, int | float) else value


Quantity = Annotated[
    str,
    checked_string(
        "quantity", QUANTITY_PATTERN, max_length=64, hint="write e.g. '500m', '1', '256Mi', '2Gi'"
    ),
    BeforeValidator(_quantity_to_string),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity ("500m", "2Gi"); numbers become strings."""
