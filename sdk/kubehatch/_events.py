"""Pushing events, one or many: their WorkflowEvent bodies, checked before anything is created.

Many events (``Client().event.push_many``, ``kubehatch event push --file events.jsonl``)
are checked first, all of them, against the same rules as one (the WorkflowEvent model,
the input schemas of the Workflows each would start, read once for the whole batch):
one bad event creates nothing, and every problem is reported with its line. Then they
are created concurrently, a few requests in flight, and each is reported on its own: a
refusal by the API server fails that event only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kubehatch.api import wire
from kubehatch.api.inputschema import InvalidInputError
from kubehatch.api.workflowevent import WorkflowEvent
from kubehatch.errors import KubehatchError

PARALLEL_CREATES = 8
"""Creates in flight at once: enough to hide the round trips, few enough for any API server."""
LINE_FIELDS = ("key", "data", "metadata", "priority")


@dataclass(frozen=True)
class EventInput:
    """One event to push: its key, payload (the runs' input), metadata and priority."""

    key: str
    data: Any = None
    metadata: dict[str, str] | None = None
    priority: int | None = None
    line: int | None = None
    """Where it was read from (a line of a JSON-lines file), for messages."""

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"event {self.key!r}"


@dataclass(frozen=True)
class Pushed:
    """What became of one event: the WorkflowEvent's name, or why it was not created."""

    event: EventInput
    name: str | None = None
    error: str | None = None


def event_body(
    key: str, payload: dict[str, Any], metadata: dict[str, str] | None, priority: int | None
) -> dict[str, Any]:
    """The WorkflowEvent to create; ``ValidationError`` on what the API server would refuse."""
    body = {
        "apiVersion": wire.API_VERSION,
        "kind": "WorkflowEvent",
        "metadata": {"generateName": "event-"},
        "spec": {
            "key": key,
            "payload": payload,
            "additionalMetadata": metadata or {},
            **({"priority": priority} if priority is not None else {}),
        },
    }
    WorkflowEvent.model_validate({**body, "metadata": {}})  # same checks as the API server
    return body


def validation_problems(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())


def parse_lines(text: str) -> list[EventInput]:
    """Events from JSON lines, each ``{"key", "data"?, "metadata"?, "priority"?}``; blank
    lines are skipped. ``KubehatchError`` lists every bad line with its number."""
    events, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"line {number}: not valid JSON ({err.msg} at column {err.colno})")
            continue
        problem = _line_problem(value)
        if problem is not None:
            problems.append(f"line {number}: {problem}")
            continue
        events.append(
            EventInput(
                key=value["key"],
                data=value.get("data") or {},
                metadata=value.get("metadata"),
                priority=value.get("priority"),
                line=number,
            )
        )
    if problems:
        raise KubehatchError(
            f"{len(problems)} bad line(s), nothing was pushed: " + " | ".join(problems)
        )
    if not events:
        raise KubehatchError("no events: the file has no JSON lines")
    return events


def _line_problem(value: Any) -> str | None:
    """What is wrong with one parsed line, or None."""
    example = 'write {"key": "order:paid", "data": {...}, "metadata": {...}, "priority": 2}'
    if not isinstance(value, dict):
        return f"a JSON object is expected, not {type(value).__name__}; {example}"
    unknown = sorted(set(value) - set(LINE_FIELDS))
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}; {example}"
    if not isinstance(value.get("key"), str):
        return f"no key (a string); {example}"
    if not isinstance(value.get("data", {}), dict):
        return "data must be a JSON object (the runs' input)"
    metadata = value.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        return "metadata must be a JSON object of strings"
    priority = value.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        return "priority must be 1, 2 or 3"
    return None


def push_many(
    events: Sequence[EventInput],
    *,
    workflows: Iterable[dict[str, Any]],
    as_input: Callable[[Any, str], dict[str, Any]],
    check: Callable[[str, list[dict[str, Any]], Any, dict[str, str] | None], None],
    create: Callable[[dict[str, Any]], str],
) -> list[Pushed]:
    """Check every event, then create them all (concurrently); one result per event, in
    order. ``KubehatchError`` naming each bad event when any is invalid: none is created."""
    listening = list(workflows)
    bodies, problems = [], []
    for event in events:
        try:
            payload = as_input(event.data, "event payload (the runs' input)")
            bodies.append(event_body(event.key, payload, event.metadata, event.priority))
            check(event.key, listening, payload, event.metadata)
        except ValidationError as err:
            problems.append(f"{event.where}: {validation_problems(err)}")
        except (InvalidInputError, KubehatchError) as err:
            problems.append(f"{event.where}: {err}")
    if problems:
        raise KubehatchError(
            f"{len(problems)} of {len(events)} event(s) are invalid, none was pushed: "
            + " | ".join(problems)
        )

    def one(pair: tuple[EventInput, dict[str, Any]]) -> Pushed:
        event, body = pair
        try:
            return Pushed(event, name=create(body))
        except KubehatchError as err:
            return Pushed(event, error=str(err))

    if not bodies:
        return []
    with ThreadPoolExecutor(max_workers=min(PARALLEL_CREATES, len(bodies))) as pool:
        return list(pool.map(one, zip(events, bodies, strict=True)))
