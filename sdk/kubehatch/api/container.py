"""What a step's container gets besides its code: environment variables and resources.

Variables take a value or a reference to a Secret or ConfigMap key (so that secrets
never sit in a Workflow, in every run's snapshot of it, or in a Job); names starting with
``KUBEHATCH_`` are the operator's contract with the step pod and are refused.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import ConfigDict, Field, model_validator

from kubehatch.api import wire
from kubehatch.api.common import ApiModel, cel_rule, cel_rules
from kubehatch.api.fields import DnsSubdomain, EnvVarName, Quantity

__all__ = ["EnvVar", "EnvVarSource", "KeySelector", "ResourceRequirements"]


class KeySelector(ApiModel):
    """One key of a Secret or ConfigMap in the run's namespace."""

    name: DnsSubdomain = Field(description="Name of the Secret or ConfigMap.")
    key: str = Field(min_length=1, max_length=253, description="The key to read.")
    optional: bool | None = Field(
        default=None, description="Start the step even if the key or the object is missing."
    )


class EnvVarSource(ApiModel):
    """Where a variable's value comes from, so that secrets never sit in the Workflow."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel_rule(
                "has(self.secretKeyRef) != has(self.configMapKeyRef)",
                "set exactly one of secretKeyRef and configMapKeyRef",
            )
        )
    )

    secret_key_ref: KeySelector | None = Field(
        default=None, description="A key of a Secret in the run's namespace."
    )
    config_map_key_ref: KeySelector | None = Field(
        default=None, description="A key of a ConfigMap in the run's namespace."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("set exactly one of secretKeyRef and configMapKeyRef")
        return self


class EnvVar(ApiModel):
    """An environment variable set in the step's container: a value, or a Secret's key."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel_rule(
                f"!self.name.startsWith('{wire.ENV_PREFIX}')",
                f"variables starting with {wire.ENV_PREFIX} are kubehatch's own (the step "
                "pod's contract with the operator); rename the variable",
                field_path=".name",
            ),
            cel_rule(
                "!(has(self.value) && self.value != '' && has(self.valueFrom))",
                "set value or valueFrom, not both",
            ),
        )
    )

    name: EnvVarName = Field(description="Variable name (not starting with KUBEHATCH_).")
    value: str = Field(default="", description="Variable value.")
    value_from: EnvVarSource | None = Field(
        default=None,
        description="Read the value from a Secret or ConfigMap key when the step's pod starts.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if wire.is_reserved_env(self.name):
            raise ValueError(
                f"{self.name!r}: variables starting with {wire.ENV_PREFIX} are kubehatch's own "
                "(the step pod's contract with the operator); rename the variable"
            )
        if self.value and self.value_from is not None:
            raise ValueError(f"{self.name!r}: set value or valueFrom, not both")
        return self

    def to_container(self) -> dict[str, Any]:
        """The container's EnvVar: the value, or where to read it from."""
        if self.value_from is None:
            return {"name": self.name, "value": self.value}
        return {"name": self.name, "valueFrom": self.value_from.to_dict()}


class ResourceRequirements(ApiModel):
    """CPU and memory for the step's container, as in a Pod spec."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Minimum resources, e.g. {cpu: 100m, memory: 128Mi}."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, description="Maximum resources, e.g. {memory: 256Mi}."
    )
