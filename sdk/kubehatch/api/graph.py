"""Checks and orderings over the step graph (steps and their parents).

Shared by the API models (a Workflow from kubectl), the operator and the SDK (which
attaches the source location of each step to the problems found here), so the rules
exist once. Works on plain ``(name, parents)`` pairs so that it can also check steps
whose other fields failed validation, and report everything in one go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter

Path = tuple[str | int, ...]
StepEdges = Sequence[tuple[str, Sequence[str]]]


def format_path(path: Path) -> str:
    """``("steps", 1, "parents", 0)`` -> ``"steps[1].parents[0]"``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


@dataclass(frozen=True)
class FieldProblem:
    """A problem found at ``path`` inside a workflow spec."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}"


def step_graph_problems(steps: StepEdges) -> list[FieldProblem]:
    """Duplicate names, unknown or repeated parents, self-references and cycles."""
    problems: list[FieldProblem] = []
    first_index: dict[str, int] = {}
    for index, (name, _) in enumerate(steps):
        if name in first_index:
            problems.append(
                FieldProblem(
                    ("steps", index, "name"),
                    f"step name {name!r} is already used by steps[{first_index[name]}]; "
                    "give every step its own name",
                )
            )
        else:
            first_index[name] = index
    listing = ", ".join(repr(name) for name in first_index) or "none"
    for index, (name, parents) in enumerate(steps):
        seen: set[str] = set()
        for position, parent in enumerate(parents):
            path = ("steps", index, "parents", position)
            if parent == name:
                message = f"step {name!r} lists itself as a parent; remove it"
            elif parent in seen:
                message = f"parent {parent!r} is listed twice; list it once"
            elif parent not in first_index:
                message = (
                    f"parent {parent!r} is not a step of this workflow (steps: {listing}); "
                    "fix the name or add that step"
                )
            else:
                seen.add(parent)
                continue
            problems.append(FieldProblem(path, message))
    cycle = find_cycle(steps)
    if cycle:
        chain = " -> ".join(repr(name) for name in cycle)
        problems.append(
            FieldProblem(
                ("steps", first_index[cycle[0]], "parents"),
                f"steps wait for each other in a cycle ({chain}, where 'a -> b' means "
                "'a' waits for 'b'); remove one of these parents",
            )
        )
    return problems


def _sorter(steps: StepEdges) -> TopologicalSorter[str]:
    names = {name for name, _ in steps}
    graph: dict[str, dict[str, None]] = {}  # dicts, not sets: keep results deterministic
    for name, parents in steps:
        graph.setdefault(name, {}).update(
            dict.fromkeys(p for p in parents if p in names and p != name)
        )
    return TopologicalSorter({name: list(parents) for name, parents in graph.items()})


def find_cycle(steps: StepEdges) -> list[str]:
    """One cycle as ``[a, b, ..., a]`` (each waits for the next), or ``[]``."""
    try:
        _sorter(steps).prepare()
    except CycleError as error:
        # graphlib lists the cycle along successor edges (parent first): reverse it so
        # that each step is followed by the step it waits for.
        loop = list(reversed(error.args[1]))[:-1]
        order = {name: index for index, (name, _) in enumerate(steps)}
        start = min(range(len(loop)), key=lambda i: order[loop[i]])
        loop = loop[start:] + loop[:start]  # start at the earliest declared step
        return [*loop, loop[0]]
    return []


def topological_order(steps: StepEdges) -> list[str]:
    """Step names with every parent before its children; ties keep declaration order.

    Raises ``ValueError`` on a cycle (validate with :func:`step_graph_problems` first).
    """
    order = {name: index for index, (name, _) in enumerate(steps)}
    sorter = _sorter(steps)
    try:
        sorter.prepare()
    except CycleError as error:
        raise ValueError(f"steps form a cycle: {error.args[1]}") from None
    result: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=order.__getitem__)
        result.extend(ready)
        sorter.done(*ready)
    return result


def descendants(steps: StepEdges, name: str) -> set[str]:
    """Every step that depends on step ``name``, directly or through other steps."""
    children: dict[str, list[str]] = {}
    for step, parents in steps:
        for parent in parents:
            children.setdefault(parent, []).append(step)
    found: set[str] = set()
    todo = [name]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
