"""The local engine (kubehatch.testing) ends a DAG as the operator does.

Each case is a DAG whose steps succeed with an output, fail, or cancel themselves; it
is run by the local engine and by the operator's `decide` (its step Jobs simulated: each
attempt ends at once as the table says, the time jumps to the next wake). Both must give
every step the same final phase and message, the hooks the same failures, each step the
same parents' outputs, the run the same phase and message, and the forEach steps and
event waits the same outputs. The parent rules, conditions and hook rules
(kubehatch.api.readiness), forEach lists and outcomes (kubehatch.api.foreach) and waits
(kubehatch.api.waiting) are one code used by both; this checks the engines around it
agree too. The operator's waits get the events and answers the local run is given, as
arriving when the wait begins.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubehatch import (
    Approval,
    Context,
    Fn,
    PermanentError,
    Sleep,
    WaitForEvent,
    WaitUntil,
    Worker,
    WorkflowJob,
)
from kubehatch.api.workflowrun import StepPhase, WorkflowRunSpec, WorkflowRunStatus
from kubehatch.testing import FakeClock, run_local
from kubehatch_operator import waits
from kubehatch_operator.conditions import needs_outputs
from kubehatch_operator.decisions import decide
from kubehatch_operator.fanout import items_done
from kubehatch_operator.model import Attempt, AttemptState, Run

T0 = datetime(2030, 1, 1, tzinfo=UTC)
FAIL = object()
"""A step's behaviour: raise PermanentError("<step> broke")."""
BROKEN = object()
"""Raise ValueError("<step> broke") (retried when the step has retries)."""
FLAKY = object()
"""Raise ValueError("<step> flaked") on the first attempt, then return "recovered"."""
CANCEL = object()
"""Call ctx.cancel() and return."""
ID_MATCHES = "event.data.id == input.id"
SELF_CANCELLED = "cancelled by the step itself (ctx.cancel())"
TIMES = ("at", "sleptUntil", "waitedUntil")
"""Output fields that are times: the engines' clocks differ, these are not compared."""


@dataclasses.dataclass
class Case:
    steps: list[dict[str, Any]]
    """name, parents, rule, skip_if, run_if, out (an output, or FAIL)."""
    hooks: dict[str, Any] = dataclasses.field(default_factory=dict)
    """on_failure / on_success / on_exit -> an output or FAIL (a hook returns its failures
    otherwise: None means "return ctx.step_run_errors()")."""
    input: dict[str, Any] = dataclasses.field(default_factory=dict)
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    events: list[tuple[str, dict[str, Any], dict[str, str]]] = dataclasses.field(
        default_factory=list
    )
    approvals: dict[str, tuple[bool, str | None]] = dataclasses.field(default_factory=dict)


def step(name: str, *parents: str, out: Any = None, **options: Any) -> dict[str, Any]:
    return {"name": name, "parents": list(parents), "out": out, **options}


def each(name: str, *parents: str, expression: str, items: list[Any], **options: Any) -> dict:
    """A forEach step; ``items`` is each item's behaviour, by index."""
    return step(name, *parents, for_each=expression, items=items, **options)


def wait(name: str, *parents: str, waits: Callable[[], Fn[Any]]) -> dict[str, Any]:
    """A step that waits; ``waits`` makes it (each worker needs its own)."""
    return step(name, *parents, wait=waits)


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
    "forEach: outputs in order, an empty list, not a list": Case(
        [
            step("a", out={"xs": [1, 2], "n": 0}),
            each("each", "a", expression="parents.a.xs", items=[{"v": 1}, {"v": 2}]),
            each("none", expression="input.none", items=[]),
            each("bad", "a", expression="parents.a", items=[]),
            step("after-bad", "bad"),
            step("after-none", "none"),
        ],
        input={"none": []},
    ),
    "forEach: an item fails after its retries": Case(
        [
            each("each", expression="[1, 2, 3]", items=[1, FLAKY, BROKEN], retries=1),
            step("below", "each"),
            each("permanent", expression="['x', 'y']", items=[FAIL, 2], retries=2),
        ],
        hooks={"on_failure": None},
    ),
    "forEach: continueOnItemFailure leaves null": Case(
        [
            each("each", expression="[1, 2, 3]", items=[1, FAIL, 3], keep_going=True),
            step("below", "each"),
        ]
    ),
    "waits: a sleep, a time, events, approvals, timeouts": Case(
        [
            wait("nap", waits=lambda: Sleep("1h")),
            wait("later", "nap", waits=lambda: WaitUntil("input.at")),
            wait(
                "paid",
                "nap",
                waits=lambda: WaitForEvent("order:*", filter="event.data.id == input.id"),
            ),
            wait("lost", waits=lambda: WaitForEvent("nope", timeout="1h", on_timeout="Continue")),
            wait("late", waits=lambda: WaitForEvent("never", timeout="30m")),
            wait("ok", "paid", waits=lambda: Approval("ship?")),
            wait("no", waits=lambda: Approval()),
            step("after-no", "no"),
            step("after-lost", "lost"),
        ],
        hooks={"on_failure": None, "on_exit": None},
        input={"id": 1, "at": "2030-01-01T03:00:00Z"},
        events=[("order:paid", {"id": 2}, {"source": "web"}), ("order:new", {"id": 1}, {})],
        approvals={"ok": (True, "fine"), "no": (False, "too big")},
    ),
    "a step that cancels itself": Case(
        [step("a", out=CANCEL), step("b", "a"), step("c", out=1), step("d", "a", rule="AllDone")],
        hooks={"on_failure": None, "on_success": None, "on_exit": None},
    ),
    "a failure outranks a cancellation": Case(
        [step("a", out=CANCEL), step("b", out=FAIL), each("c", expression="[1]", items=[CANCEL])],
        hooks={"on_success": None, "on_exit": None},
    ),
}


def act(name: str, out: Any, ctx: Context) -> Any:
    if out is FAIL:
        raise PermanentError(f"{name} broke")
    if out is BROKEN:
        raise ValueError(f"{name} broke")
    if out is FLAKY:
        if ctx.retry_count == 0:
            raise ValueError(f"{name} flaked")
        return "recovered"
    if out is CANCEL:
        ctx.cancel()
        return None
    return ctx.step_run_errors() if out is None and name.startswith("on-") else out


def behaviour(name: str, out: Any, seen: dict[str, Any], items: Any = None) -> Any:
    def run(ctx: Context) -> Any:
        seen[name] = sorted(ctx.parents)
        return act(name, out if items is None else items[ctx.item_index], ctx)

    run.__name__ = run.__qualname__ = name.replace("-", "_")
    return run


def worker_of(case: Case, seen: dict[str, Any]) -> Worker:
    made: dict[str, Fn[Any]] = {}
    for s in case.steps:
        if "wait" in s:
            fn = s["wait"]().set_name(s["name"])
        else:
            fn = Fn(behaviour(s["name"], s["out"], seen, s.get("items"))).set_name(s["name"])
        fn.add_parents(*(made[p] for p in s["parents"]))
        if "for_each" in s:
            keep_going = s.get("keep_going", False)
            fn.set_for_each(s["for_each"], parallelism=1, continue_on_item_failure=keep_going)
        if "retries" in s:
            fn.set_retries(s["retries"])
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
    items = {s["name"]: s["items"] for s in case.steps if "items" in s}
    attempts: list[Attempt] = []
    failures: dict[str, Any] = {}
    item_outputs: dict[tuple[str, int], Any] = {}
    stored: dict[str, Any] = {}
    now = T0
    for _ in range(200):
        steps = run.status.steps
        wanted = {p for s in spec.steps if s.name in steps for p in needs_outputs(s, steps)}
        gathered = {
            name: [item_outputs.get((name, i)) for i in range(len(items[name]))]
            for name in items
            if name in steps and items_done(steps[name])
        }
        decision = decide(
            run, spec, attempts, now, outputs={p: outs[p] for p in wanted},
            gathered=gathered, waited=given(case, run),
        )  # fmt: skip
        run = dataclasses.replace(run, status=decision.status)
        stored.update({o.step: json.loads(o.text) for o in decision.outputs})
        for start in decision.start:
            name = start.step.name
            seen[name] = sorted(start.parents)
            if start.failures is not None:
                failures[name] = start.failures
            out = outs[name] if start.item is None else items[name][start.item]
            attempts.append(simulated(start.job_name, name, start.attempt, out, now, start.item))
            if attempts[-1].state is AttemptState.SUCCEEDED and start.item is not None:
                item_outputs[name, start.item] = "recovered" if out is FLAKY else out
        if run.status.phase is not None and run.status.phase.finished:
            break
        now = max(now + timedelta(seconds=1), decision.wake_at or now)
    status = run.status
    condition = next(c for c in status.conditions if c.type == "Succeeded")
    return {
        "phases": {n: s.phase.value for n, s in status.steps.items()},
        "messages": {n: s.message for n, s in status.steps.items() if s.message},
        "failures": failures,
        "phase": status.phase.value if status.phase else None,
        "message": condition.message if status.phase != "Succeeded" else "",
        "outputs": comparable(stored),
    }


def simulated(job: str, name: str, attempt: int, out: Any, now: datetime, item: Any) -> Attempt:
    """The Job of one attempt, ended at once as ``out`` says (as a step pod would end)."""
    failed = out in (FAIL, BROKEN) or (out is FLAKY and attempt == 1)
    cancelled = out is CANCEL
    message = None
    if out is FAIL or out is BROKEN:
        message = f"{'PermanentError' if out is FAIL else 'ValueError'}: {name} broke"
    elif out is FLAKY and failed:
        message = f"ValueError: {name} flaked"
    elif cancelled:
        message = SELF_CANCELLED
    state = AttemptState.FAILED if failed or cancelled else AttemptState.SUCCEEDED
    return Attempt(
        name, attempt, job, state, now, now, message=message, permanent=out is FAIL,
        cancelled=cancelled, item=item,
    )  # fmt: skip


def given(case: Case, run: Run) -> dict[str, waits.Waited]:
    """The case's events and answers, for the waits that run, as arriving when they began
    (as the local engine takes them; named as it names them)."""
    found = {}
    for name, current in run.status.steps.items():
        began = current.started_at
        if current.phase is not StepPhase.RUNNING or began is None:
            continue
        events = [
            waits.SeenEvent(f"local-event-{n}", key, data, metadata, began)
            for n, (key, data, metadata) in enumerate(case.events, start=1)
        ]
        answers = []
        if name in case.approvals:
            ok, comment = case.approvals[name]
            answers.append(waits.Approval("local", ok, "local", began, comment))
        found[name] = waits.Waited(events=events, approvals=answers)
    return found


def comparable(stored: dict[str, Any]) -> dict[str, Any]:
    """The outputs the operator stores itself (forEach, waits), but for their times."""
    return {
        name: {k: v for k, v in value.items() if k not in TIMES}
        if isinstance(value, dict)
        else value
        for name, value in stored.items()
    }


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_the_local_engine_ends_each_step_as_the_operator(case: Case) -> None:
    on_cluster: dict[str, Any] = {}
    expected = outcome(case, on_cluster)
    here: dict[str, Any] = {}
    run = run_local(
        worker_of(case, here), "wf", case.input, clock=FakeClock(),
        additional_metadata=case.metadata, events=case.events, approvals=case.approvals,
    )  # fmt: skip
    asking = [f"on-{hook[3:]}" for hook, out in case.hooks.items() if out is None]
    got = {
        "phases": run.phases,
        "messages": run.messages,
        "failures": {n: run.outputs[n] for n in asking if run.phases[n] == "Succeeded"},
        "phase": run.phase,
        "message": run.message,
        "outputs": comparable({n: run.outputs[n] for n in expected["outputs"]}),
    }
    expected["failures"] = {n: f for n, f in expected["failures"].items() if n in asking}
    assert got == expected
    assert here == on_cluster  # the steps that ran, each with the same parents' outputs
