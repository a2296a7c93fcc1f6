"""Checks made before a run or an event is created: the input against the Workflows' schemas.

The Client (and so the CLI) reads the Workflows a submission would start and checks the
input with :func:`kubehatch.api.inputschema.input_problems`, the function the operator
runs when the run starts: what is refused here would fail there, with the same message.
An event is checked against every Workflow it would start (its key matches one of their
``spec.triggers.events``, or one of their ``filteredEvents`` whose filter is true for it,
as the operator matches them, and they are not suspended); one that does not fit refuses
the whole event, so that nothing is created. A filter that fails here is left for the
operator to report on the event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubehatch.api.inputschema import InvalidInputError, input_problems
from kubehatch.api.triggerspec import filter_accepts, key_matches


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


def _accepts(expression: Any, key: str, payload: Any, metadata: dict[str, str] | None) -> bool:
    if not isinstance(expression, str) or not isinstance(payload, dict):
        return False
    try:
        return filter_accepts(expression, key, payload, metadata)
    except ValueError:  # the operator reports it on the event
        return False


def started_by(
    workflows: Iterable[dict[str, Any]],
    key: str,
    payload: Any = None,
    metadata: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The Workflows an event with ``key`` starts: listening for it (through a filter that
    ``payload`` and ``metadata`` pass, for a filtered entry) and not suspended."""
    started = []
    for workflow in workflows:
        spec = workflow.get("spec") or {}
        triggers = spec.get("triggers") or {}
        if spec.get("suspend"):
            continue
        if any(key_matches(p, key) for p in triggers.get("events") or []) or any(
            isinstance(entry, dict)
            and key_matches(str(entry.get("key")), key)
            and _accepts(entry.get("filter"), key, payload, metadata)
            for entry in triggers.get("filteredEvents") or []
        ):
            started.append(workflow)
    return started


def check_event_payload(
    key: str,
    workflows: Iterable[dict[str, Any]],
    payload: Any,
    metadata: dict[str, str] | None = None,
) -> None:
    """Raise :class:`InvalidInputError` if the payload does not fit a Workflow it starts."""
    refused = []
    started = started_by(workflows, key, payload, metadata)
    for workflow in sorted(started, key=lambda w: w["metadata"]["name"]):
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
