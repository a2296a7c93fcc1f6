"""Turn a pydantic model's JSON schema into a Kubernetes structural schema.

Pydantic emits JSON Schema 2020-12; the API server wants an OpenAPI v3 subset with
stricter rules ("structural"): every node has a ``type``, no ``$ref``, ``anyOf`` only
in the shapes Kubernetes knows, objects either list ``properties`` or map values via
``additionalProperties``. The conversion is strict: an unknown keyword raises
:class:`SchemaConversionError` with its path, instead of producing a CRD the API
server would reject (or, worse, silently accept and prune).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kubehatch.errors import KubehatchError

Schema = dict[str, Any]

#: Keywords copied as they are.
_KEPT = frozenset(
    {
        "type",
        "description",
        "enum",
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
        "nullable",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-map-type",
    }
)
#: Keywords that carry no meaning for the API server.
_DROPPED = frozenset({"title", "examples"})
#: Marks a field the API server stores as it is, without its schema (see `opaque`).
OPAQUE = "x-kubehatch-opaque"


def opaque() -> dict[str, Any]:
    """``json_schema_extra`` of a field only the operator writes, copied from an object the
    API server validated already (a run's Workflow snapshot): the CRD keeps it as an object
    of unknown fields, so that each status write does not validate the copy again against
    its whole schema and CEL rules (measured: about 5 ms of API server CPU per write)."""
    return {OPAQUE: True}


class SchemaConversionError(KubehatchError):
    """A pydantic schema uses something a CRD schema cannot express."""


def structural_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of ``model`` (validation mode, camelCase field names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _convert(raw, definitions, model.__name__)


def _resolve(node: Schema, definitions: Schema, path: str) -> Schema:
    """Inline a ``$ref``; the referring node's own keys (description...) win."""
    ref = node.get("$ref")
    if ref is None:
        return node
    name = ref.rsplit("/", 1)[-1]
    if name not in definitions:
        raise SchemaConversionError(f"{path}: unresolvable reference {ref!r}")
    merged = dict(definitions[name])
    merged.update({key: value for key, value in node.items() if key != "$ref"})
    return merged


def _strip_null(node: Schema) -> Schema:
    """``X | None`` becomes plain X: absent and null mean the same on the wire."""
    variants = node.get("anyOf")
    if not variants:
        return node
    non_null = [variant for variant in variants if variant.get("type") != "null"]
    if len(non_null) == len(variants) or len(non_null) != 1:
        return node
    merged = {key: value for key, value in node.items() if key != "anyOf"}
    return {**non_null[0], **merged}


def _convert(node: Schema, definitions: Schema, path: str) -> Schema:
    if node.get(OPAQUE):
        kept = {key: node[key] for key in ("description",) if key in node}
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True, **kept}
    node = _strip_null(_resolve(node, definitions, path))
    if "$ref" in node:  # a nullable reference resolves to another reference
        node = _resolve(node, definitions, path)
    result: Schema = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "default":
            if isinstance(value, str | int | float | bool):  # scalars only: see module docs
                result["default"] = value
        elif key == "const":
            result["enum"] = [value]
        elif key == "properties":
            result[key] = {
                name: _convert(child, definitions, f"{path}.{name}")
                for name, child in value.items()
            }
        elif key == "items":
            result[key] = _convert(value, definitions, f"{path}[]")
        elif key == "additionalProperties":
            _convert_additional(value, result, definitions, path)
        elif key == "anyOf":
            result[key] = _convert_any_of(node, definitions, path)
        elif key in _KEPT:
            result[key] = value
        else:
            raise SchemaConversionError(f"{path}: keyword {key!r} is not allowed in a CRD schema")
    _check_typed(result, path)
    return result


def _convert_additional(value: Any, result: Schema, definitions: Schema, path: str) -> None:
    if value is False:  # extra="forbid": pruning already drops unknown fields
        return
    if value is True or value == {}:
        result["x-kubernetes-preserve-unknown-fields"] = True
        return
    result["additionalProperties"] = _convert(value, definitions, f"{path}{{}}")


def _convert_any_of(node: Schema, definitions: Schema, path: str) -> list[Schema]:
    """Only int-or-string may keep an ``anyOf`` (as Kubernetes' own types do)."""
    if not node.get("x-kubernetes-int-or-string"):
        raise SchemaConversionError(
            f"{path}: a union other than 'X | None' or int-or-string cannot be a CRD schema"
        )
    return [_convert(variant, definitions, path) for variant in node["anyOf"]]


def _check_typed(node: Schema, path: str) -> None:
    exempt = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if "type" not in node and not exempt:
        raise SchemaConversionError(f"{path}: every node of a structural schema needs a type")
    if "type" not in node and node.get("x-kubernetes-preserve-unknown-fields"):
        node["type"] = "object"
