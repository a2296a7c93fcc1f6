"""Turn a registered workflow (:mod:`kubehatch._declare`) into a validated ``WorkflowSpec``.

Validation is the API models' (the same rules the operator and the CRD apply); what
this module adds is *where*: every problem pydantic or the graph checks find at a
path such as ``steps[1].timeout`` is traced back to the line that declared that step,
trigger or limit, and all problems are collected instead of stopping at the first.

It loads the API models (pydantic, croniter): the registry compiles a workflow the first
time its spec or problems are asked for, which a step pod never does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kubehatch._declare import DeclaredWorkflow, StepBinding, clean_message
from kubehatch.api.graph import Path, format_path, step_graph_problems
from kubehatch.api.inputschema import input_schema_of
from kubehatch.api.workflow import SpecProblems, WorkflowSpec
from kubehatch.errors import Problem


@dataclass(frozen=True)
class CompiledWorkflow:
    """A registered workflow: its spec (None when invalid), bindings and problems."""

    name: str
    service: str
    origin: str
    spec: WorkflowSpec | None
    steps: tuple[StepBinding, ...]
    key_function: StepBinding | None
    problems: tuple[Problem, ...]


def compile_workflow(declared: DeclaredWorkflow) -> CompiledWorkflow:
    """Validate the spec ``declared`` holds; its problems come first, then the spec's."""
    problems = list(declared.problems)
    spec = _Validation(declared, problems).run()
    return CompiledWorkflow(
        name=declared.name,
        service=declared.service,
        origin=declared.origin,
        spec=spec if not problems else None,
        steps=declared.steps,
        key_function=declared.key_function,
        problems=tuple(problems),
    )


class _Validation:
    """One validation: the declared workflow and the list its problems are added to."""

    def __init__(self, declared: DeclaredWorkflow, problems: list[Problem]) -> None:
        self.declared = declared
        self.problems = problems

    def add(self, origin: str, subject: str, message: str) -> None:
        self.problems.append(Problem(origin, subject, message))

    def run(self) -> WorkflowSpec | None:
        data = self._with_input_schema(self.declared.data)
        try:
            return WorkflowSpec.model_validate(data)
        except ValidationError as error:
            cross_checked = False
            for detail in error.errors():
                cause = detail.get("ctx", {}).get("error")
                if isinstance(cause, SpecProblems):
                    cross_checked = True
                    for problem in cause.problems:
                        self._add_at(problem.path, problem.message)
                else:
                    self._add_at(tuple(detail["loc"]), clean_message(detail))
            if not cross_checked:  # field errors stopped the model check: run the graph part
                edges = [(step["name"], step["parents"]) for step in data["steps"]]
                for problem in step_graph_problems(edges):
                    self._add_at(problem.path, problem.message)
            return None

    def _with_input_schema(self, data: dict[str, Any]) -> dict[str, Any]:
        """The spec data with the input model's JSON Schema, when the workflow has a model."""
        model = self.declared.input_model
        if model is None:
            return data
        try:
            return {**data, "inputSchema": input_schema_of(model)}
        except ValueError as error:
            subject = self.declared.subject(field="input_validator")
            self.add(self.declared.origin, subject, str(error))
            return data

    def _add_at(self, path: Path, message: str) -> None:
        """Record a problem found at ``path`` of the spec, at the origin of that part."""
        declared = self.declared
        head = path[0] if path else ""
        if head == "steps" and len(path) > 1 and isinstance(path[1], int):
            index = path[1]
            subject = declared.subject(declared.steps[index].name, format_path(path[2:]))
            self.add(declared.step_origins[index], subject, message)
        elif head == "triggers" and len(path) > 2 and isinstance(path[2], int):
            origin = declared.trigger_origins[str(path[1])][path[2]]
            self.add(origin, declared.subject(field=f"on ({path[1]})"), message)
        elif head == "concurrency" and declared.concurrency_origin is not None:
            field = format_path(path)
            self.add(declared.concurrency_origin, declared.subject(field=field), message)
        else:
            self.add(declared.origin, declared.subject(field=format_path(path)), message)
