"""The pydantic-to-structural-schema conversion, including what it refuses."""

import re
from typing import Any

import pytest
from pydantic import BaseModel, Field

from kubehatch.api.fields import Quantity
from kubehatch.api.schema import SchemaConversionError, opaque, structural_schema


class Inner(BaseModel):
    """Docstring of the inner model."""

    size: int = Field(default=3, ge=1, description="How big.")


class Outer(BaseModel):
    """The outer model."""

    inner: Inner | None = Field(default=None, description="Overrides the docstring.")
    items: list[Inner] = Field(default_factory=list, description="A list.")
    free: dict[str, Any] = Field(default_factory=dict, description="Anything.")
    labels: dict[str, str] = Field(default_factory=dict, description="Strings.")
    amount: Quantity = Field(default="1", description="A quantity.")
    kind: str = Field(default="x", description="A string with a default.")


class Holder(BaseModel):
    snapshot: Outer | None = Field(default=None, description="A copy.", json_schema_extra=opaque())


def test_an_opaque_field_is_stored_as_it_is_without_its_schema() -> None:
    """The API server neither validates nor prunes it; pydantic still checks it fully."""
    field = structural_schema(Holder)["properties"]["snapshot"]
    assert field == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "A copy.",
    }
    with pytest.raises(ValueError, match="size"):
        Holder.model_validate({"snapshot": {"inner": {"size": 0}}})


def test_references_are_inlined_and_nulls_dropped() -> None:
    schema = structural_schema(Outer)
    inner = schema["properties"]["inner"]
    assert inner == {
        "type": "object",
        "description": "Overrides the docstring.",
        "properties": {
            "size": {"type": "integer", "default": 3, "minimum": 1, "description": "How big."}
        },
    }
    assert schema["properties"]["items"]["items"]["description"] == "Docstring of the inner model."
    assert "title" not in str(schema) and "$ref" not in str(schema)


def test_maps_and_free_form_objects() -> None:
    properties = structural_schema(Outer)["properties"]
    assert properties["free"] == {
        "type": "object",
        "description": "Anything.",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert properties["labels"]["additionalProperties"] == {"type": "string"}


def test_int_or_string_keeps_its_any_of() -> None:
    amount = structural_schema(Outer)["properties"]["amount"]
    assert amount["x-kubernetes-int-or-string"] is True
    assert amount["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert "type" not in amount


def test_only_scalar_defaults_are_kept() -> None:
    properties = structural_schema(Outer)["properties"]
    assert properties["kind"]["default"] == "x"
    assert "default" not in properties["items"]
    assert "default" not in properties["inner"]


class Union(BaseModel):
    value: int | str


class Extra(BaseModel):
    value: str = Field(json_schema_extra={"uniqueItems": True})


class Untyped(BaseModel):
    value: Any


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (Union, "Union.value: a union other than 'X | None' or int-or-string"),
        (Extra, "Extra.value: keyword 'uniqueItems' is not allowed in a CRD schema"),
        (Untyped, "Untyped.value: every node of a structural schema needs a type"),
    ],
)
def test_what_a_crd_cannot_express_is_refused_with_its_path(
    model: type[BaseModel], message: str
) -> None:
    with pytest.raises(SchemaConversionError, match=re.escape(message)):
        structural_schema(model)
