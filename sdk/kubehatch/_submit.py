"""Checks made before a run or an event is created: the input against the Workflows' schemas.

The Client (and so the CLI) reads the Workflows a submission would start and checks the
input with :func:`kubehatch.api.inputschema.input_problems`, the function the operator
runs when the run starts: what is refused here would fail there, with the same message.
An event is checked against every Workflow it would start (its key matches one of their
``spec.triggers.events``, as the operator matches it, and they are not suspended); one
that does not fit refuses the whole event, so that nothing is created.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubehatch.api.inputschema import InvalidInputError, input_problems


def input_schema(workflow: dict[str, Any] | None) -> dict[str, Any] | None:
    """``spec.inputSchema`` of a Workflow object, if it has one."""
    spec = (workflow or {}).get("spec") or {}
    schema = spec.get("inputSchema")
    return schema if isinstance(schema, dict) else None


def check_run_input(name: str, workflow: dict[str, Any] | None, value: Any) -> None:
    """Raise :class:`InvalidInputError` if ``value`` does not fit the Workflow's schema."""
    problems = input_problems(input_schema(workflow), value)
    if problems is not None:
        raise InvalidInputError(name, problems)


def key_matches(pattern: str, key: str) -> bool:
    """Whether event ``key`` matches a ``spec.triggers.events`` entry (``prefix*`` too)."""
    return key.startswith(pattern[:-1]) if pattern.endswith("*") else pattern == key


def started_by(workflows: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The Workflows an event with ``key`` starts: listening for it and not suspended."""
    started = []
    for workflow in workflows:
        spec = workflow.get("spec") or {}
        events = (spec.get("triggers") or {}).get("events") or []
        if not spec.get("suspend") and any(key_matches(p, key) for p in events):
            started.append(workflow)
    return started


def check_event_payload(key: str, workflows: Iterable[dict[str, Any]], payload: Any) -> None:
    """Raise :class:`InvalidInputError` if the payload does not fit a Workflow it starts."""
    refused = []
    for workflow in sorted(started_by(workflows, key), key=lambda w: w["metadata"]["name"]):
        problems = input_problems(input_schema(workflow), payload)
        if problems is not None:
            refused.append((workflow["metadata"]["name"], problems))
    if refused:
        names = ", ".join(repr(name) for name, _ in refused)
        details = " | ".join(f"{name}: {problems}" for name, problems in refused)
        raise InvalidInputError(
            names,
            details,
            what=f"event {key!r} was not pushed: its payload is the input of {names}, "
            f"and does not fit",
        )
