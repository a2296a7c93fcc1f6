"""The local engine (kubehatch.testing) ends a DAG as the operator does.

Each case is a DAG whose steps succeed with an output or fail; it is run by the local
engine and by the operator's `decide` (its step Jobs simulated: each attempt ends at
once as the table says). Both must give every step the same final phase and message,
the hooks the same failures, each step the same parents' outputs, and the run the same
phase and message. The parent rules, conditions and hook rules are one code
(kubehatch.api.readiness) used by both; this checks the engines around it agree too.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubehatch import Context, Fn, PermanentError, Worker, WorkflowJob
from kubehatch.api.workflowrun import WorkflowRunSpec, WorkflowRunStatus
from kubehatch.testing import FakeClock, run_local
from kubehatch_operator.conditions import needs_outputs
from kubehatch_operator.decisions import decide
from kubehatch_operator.model import Attempt, AttemptState, Run

T0 = datetime(2030, 1, 1, tzinfo=UTC)
FAIL = object()
"""A step's behaviour: raise PermanentError("<step> broke")."""


@dataclasses.dataclass
class Case:
    steps: list[dict[str, Any]]
    """name, parents, rule, skip_if, run_if, out (an output, or FAIL)."""
    hooks: dict[str, Any] = dataclasses.field(default_factory=dict)
    """on_failure / on_success / on_exit -> an output or FAIL (a hook returns its failures
    otherwise: None means "return ctx.step_run_errors()")."""
    input: dict[str, Any] = dataclasses.field(default_factory=dict)
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)


def step(name: str, *parents: str, out: Any = None, **options: Any) -> dict[str, Any]:
    return {"name": name, "parents": list(parents), "out": out, **options}


CASES = {
    "parent rules": Case(
        [
            step("a", out=FAIL),
            step("ok", out={"n": 1}),
            step("all-succeeded", "a"),
            step("all-done", "a", "ok", rule="AllDone"),
            step("any-succeeded", "a", "ok", rule="AnySucceeded"),
            step("none-succeeded", "a", "all-succeeded", rule="AnySucceeded"),
            step("done-after-skip", "all-succeeded", rule="AllDone"),
            step("below-skip", "all-succeeded"),
        ]
    ),
    "conditions": Case(
        [
            step("a", out={"amount": 150, "tags": ["x"]}),
            step("big", "a", skip_if="parents.a.amount > 100"),
            step("small", "a", run_if="parents.a.amount < 100"),
            step("go", run_if="input.go"),
            step("no-go", skip_if="input.go"),
            step("gold", skip_if="additional_metadata.tier == 'gold'"),
            step("below-skipped", "big"),
            step("missing", "a", run_if="parents.a.missing > 1"),
            step("not-bool", run_if="1 + 1"),
            step("below-failed", "missing", rule="AllDone"),
            step("after-skip-any", "big", "small", rule="AnySucceeded"),
        ],
        input={"go": True},
        metadata={"tier": "gold"},
    ),
    "a failure runs onFailure then onExit": Case(
        [step("a", out={"v": 1}), step("b", "a", out=FAIL), step("c", "a"), step("d", "b")],
        hooks={"on_failure": None, "on_success": None, "on_exit": None},
    ),
    "success runs onSuccess then onExit": Case(
        [step("a", out={"v": 1}), step("b", "a", skip_if="true")],
        hooks={"on_failure": None, "on_success": None, "on_exit": None},
    ),
    "a failing hook fails the run and onExit hears of it": Case(
        [step("a", out=1)],
        hooks={"on_success": FAIL, "on_exit": None},
    ),
    "a condition that fails is a failure for the hooks": Case(
        [step("a", out={}), step("b", "a", skip_if="parents.a.nothing")],
        hooks={"on_failure": None, "on_exit": None},
    ),
}


def behaviour(name: str, out: Any, seen: dict[str, Any]) -> Any:
    def run(ctx: Context) -> Any:
        seen[name] = sorted(ctx.parents)
        if out is FAIL:
            raise PermanentError(f"{name} broke")
        return ctx.step_run_errors() if out is None and name.startswith("on-") else out

    run.__name__ = run.__qualname__ = name.replace("-", "_")
    return run


def worker_of(case: Case, seen: dict[str, Any]) -> Worker:
    made: dict[str, Fn[Any]] = {}
    for s in case.steps:
        fn = Fn(behaviour(s["name"], s["out"], seen)).set_name(s["name"])
        fn.add_parents(*(made[p] for p in s["parents"]))
        if "rule" in s:
            fn.set_parent_rule(s["rule"])
        if "skip_if" in s:
            fn.set_skip_if(s["skip_if"])
        if "run_if" in s:
            fn.set_run_if(s["run_if"])
        made[s["name"]] = fn
    hooks = {
        hook: Fn(behaviour(f"on-{hook[3:]}", out, seen)).set_name(f"on-{hook[3:]}")
        for hook, out in case.hooks.items()
    }
    worker = Worker("parity", image="img:1")
    job = WorkflowJob(name="wf", steps=list(made.values()))
    worker.register_workflow(dataclasses.replace(job, **hooks))  # type: ignore[arg-type]
    return worker


def outcome(case: Case, seen: dict[str, Any]) -> dict[str, Any]:
    """What the operator makes of the case."""
    spec = worker_of(case, {}).get_workflow("wf").spec
    assert spec is not None
    outs = {s["name"]: s["out"] for s in case.steps}
    outs.update({f"on-{hook[3:]}": out for hook, out in case.hooks.items()})
    run_spec = {"workflowRef": {"name": "wf"}, "input": case.input}
    run_spec["additionalMetadata"] = case.metadata
    run = Run("r", 1, WorkflowRunSpec.model_validate(run_spec), WorkflowRunStatus(), uid="u")
    attempts: list[Attempt] = []
    failures: dict[str, Any] = {}
    now = T0
    for _ in range(50):
        steps = run.status.steps
        wanted = {p for s in spec.steps if s.name in steps for p in needs_outputs(s, steps)}
        decision = decide(run, spec, attempts, now, outputs={p: outs[p] for p in wanted})
        run = dataclasses.replace(run, status=decision.status)
        for start in decision.start:
            name = start.step.name
            seen[name] = sorted(start.parents)
            if start.failures is not None:
                failures[name] = start.failures
            failed = outs[name] is FAIL
            state = AttemptState.FAILED if failed else AttemptState.SUCCEEDED
            message = f"PermanentError: {name} broke" if failed else None
            attempts.append(
                Attempt(name, start.attempt, start.job_name, state, now, now,
                        message=message, permanent=failed)
            )  # fmt: skip
        if run.status.phase is not None and run.status.phase.finished:
            break
        now += timedelta(seconds=1)
    status = run.status
    condition = next(c for c in status.conditions if c.type == "Succeeded")
    return {
        "phases": {n: s.phase.value for n, s in status.steps.items()},
        "messages": {n: s.message for n, s in status.steps.items() if s.message},
        "failures": failures,
        "phase": status.phase.value if status.phase else None,
        "message": condition.message if status.phase != "Succeeded" else "",
    }


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_the_local_engine_ends_each_step_as_the_operator(case: Case) -> None:
    on_cluster: dict[str, Any] = {}
    expected = outcome(case, on_cluster)
    here: dict[str, Any] = {}
    run = run_local(
        worker_of(case, here), "wf", case.input, clock=FakeClock(),
        additional_metadata=case.metadata,
    )  # fmt: skip
    asking = [f"on-{hook[3:]}" for hook, out in case.hooks.items() if out is None]
    got = {
        "phases": run.phases,
        "messages": run.messages,
        "failures": {n: run.outputs[n] for n in asking if run.phases[n] == "Succeeded"},
        "phase": run.phase,
        "message": run.message,
    }
    expected["failures"] = {n: f for n, f in expected["failures"].items() if n in asking}
    assert got == expected
    assert here == on_cluster  # the steps that ran, each with the same parents' outputs
