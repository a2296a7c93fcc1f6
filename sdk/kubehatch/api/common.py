"""Building blocks shared by every kind: the base model, identifiers and conditions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of the spec models: snake_case in Python, camelCase on the wire.

    Unknown fields are rejected so that a typo in a manifest (``maxRun``) is reported
    instead of silently ignored. Dump with :meth:`to_dict` to get the wire form.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, no ``None`` values, JSON-compatible scalars."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(ApiModel):
    """Base of the status models: tolerant of fields written by newer operators."""

    model_config = ConfigDict(extra="ignore")


def cel_rule(rule: str, message: str, *, field_path: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry (the API server evaluates ``rule``)."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def cel_rules(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules for a model or field."""
    return {"x-kubernetes-validations": list(rules)}


class ConditionStatus(StrEnum):
    """Condition status values defined by the Kubernetes API conventions."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Condition(StatusModel):
    """An observation of one aspect of the object, as in metav1.Condition."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Kind of condition in CamelCase, e.g. Ready or Succeeded.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(
        default="", max_length=32768, description="Human-readable details of the transition."
    )
    last_transition_time: datetime = Field(
        default_factory=_now, description="When the status last changed."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was set for."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        description="Latest observations of the object's state.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]
"""A condition list merged by ``type``, as the API conventions ask."""


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of the given type, if present."""
    return next((c for c in conditions if c.type == type_), None)


def set_condition(conditions: Sequence[Condition], new: Condition) -> list[Condition]:
    """Return ``conditions`` with ``new`` replacing the one of the same type.

    ``lastTransitionTime`` is kept when the status does not change, so that it records
    the last *transition* rather than the last write (the API conventions' rule).
    """
    old = find_condition(conditions, new.type)
    if old is not None and old.status == new.status:
        new = new.model_copy(update={"last_transition_time": old.last_transition_time})
    return [new if c.type == new.type else c for c in conditions] if old else [*conditions, new]
