"""A workflow's typed input: its JSON Schema, and checking a run's input against it.

``WorkflowJob(input_validator=Model)`` (or ``worker.workflow(..., input_validator=Model)``)
puts ``Model``'s JSON Schema, as pydantic generates it, into the Workflow's
``spec.inputSchema``. Whoever starts a run checks the input against that schema with
:func:`input_problems`: the CLI and the Client before they create anything, the operator
when the run starts (a run may have been created with kubectl). All of them use the same
function over the same schema, so they accept and refuse the same inputs with the same
message, each problem named by its field path (``address.zip: 'x' is not of type
'integer'``).

The schema is checked as JSON Schema draft 2020-12 (pydantic's dialect) by ``jsonschema``;
``format`` keywords are annotations only, as the draft says.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator

from kubehatch.errors import KubehatchError

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

MAX_PROBLEMS = 10
"""At most this many problems are named in a message (the rest are counted)."""


class InvalidInputError(KubehatchError, ValueError):
    """A run's input does not fit its Workflow's ``spec.inputSchema``."""

    def __init__(self, workflow: str, problems: str, *, what: str | None = None) -> None:
        self.workflow = workflow
        self.problems = problems
        super().__init__(f"{what or f'the input of workflow {workflow!r} is invalid'}: {problems}")


def input_schema_of(model: Any) -> dict[str, Any]:
    """The JSON Schema of an input model (pydantic model, dataclass, TypedDict...).

    Raises ``ValueError`` for a type whose values are not JSON objects, or that pydantic
    cannot describe.
    """
    from pydantic import TypeAdapter
    from pydantic.errors import PydanticUserError

    try:
        schema = TypeAdapter(model).json_schema()
    except (PydanticUserError, TypeError) as err:
        raise ValueError(f"{model!r} has no JSON Schema: {err}") from err
    if schema.get("type") != "object":
        raise ValueError(
            f"{getattr(model, '__name__', model)!r} does not describe a JSON object; a run's "
            "input is one: use a pydantic model, a dataclass or a TypedDict"
        )
    return schema


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` if it is a valid JSON Schema (a pydantic validator of ``spec.inputSchema``)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        where = _path(err.absolute_path)
        prefix = f"{where}: " if where else ""
        raise ValueError(f"not a valid JSON Schema: {prefix}{err.message}") from None
    return schema


InputSchema = Annotated[dict[str, Any], AfterValidator(check_schema)]
"""The type of ``spec.inputSchema``: any JSON object that is a valid JSON Schema."""


def input_problems(schema: dict[str, Any] | None, value: Any) -> str | None:
    """What is wrong with ``value`` as an input for ``schema``, or None if it fits.

    One line, each problem as ``path: message`` (the path of the field, dotted, with list
    indexes in brackets; ``(input)`` for the whole input), separated by ``; ``.
    """
    if not schema:
        return None
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: (list(map(str, e.path)), e.message))
    if not errors:
        return None
    lines = [_describe(error) for error in _leaves(errors)]
    shown = "; ".join(lines[:MAX_PROBLEMS])
    more = len(lines) - MAX_PROBLEMS
    return f"{shown}; and {more} more" if more > 0 else shown


def check_input(workflow: str, schema: dict[str, Any] | None, value: Any) -> None:
    """Raise :class:`InvalidInputError` if ``value`` does not fit ``schema``."""
    problems = input_problems(schema, value)
    if problems is not None:
        raise InvalidInputError(workflow, problems)


def _leaves(errors: Iterable[ValidationError]) -> list[ValidationError]:
    """The most precise errors: an ``anyOf`` (``X | None``) failing is told by its branch."""
    result = []
    for error in errors:
        if error.context and error.validator in ("anyOf", "oneOf"):
            # The best branch: the one whose errors go deepest into the value.
            best = max(error.context, key=lambda e: len(e.absolute_path))
            result.append(best)
        else:
            result.append(error)
    return result


def _describe(error: ValidationError) -> str:
    path = list(error.absolute_path)
    message = error.message
    if error.validator == "required":
        # "'zip' is a required property" at the object: name the missing field itself.
        missing = message.split("'")[1] if message.count("'") >= 2 else ""
        if missing:
            path.append(missing)
            message = "field required"
    elif error.validator == "additionalProperties":
        message = message.replace("Additional properties are not allowed", "unknown field(s)")
    return f"{_path(path) or '(input)'}: {message}"


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
