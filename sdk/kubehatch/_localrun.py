"""The local engine: a workflow run in this process, as the operator would run it on a cluster.

What :mod:`kubehatch.testing` and ``kubehatch run WF --local`` use. It follows the
operator's rules, one step at a time in dependency order, and ends each step with the
phase and message the operator's status would show:

* the input is checked against the Workflow's ``inputSchema`` first (reason InvalidInput);
* a step's ``parentRule`` decides when its parents let it run (AllSucceeded by default,
  AllDone, AnySucceeded), then its ``skipIf`` / ``runIf`` CEL over ``input``,
  ``additional_metadata`` and the outputs of its parents that succeeded, which are all it
  receives (``ctx.parents``): the rules are the operator's own, :mod:`kubehatch.api.readiness`;
* a failed attempt is retried after its backoff, an attempt past the step's ``timeout``
  is cancelled, a step that calls ``ctx.cancel()`` ends Cancelled, not retried (see
  :mod:`kubehatch._localattempts`);
* a step that fails for good skips the steps below it that need it, the other branches
  go on (with ``fail_fast`` the rest is skipped); one cancelled skips them too, and the
  run ends Cancelled, unless a step failed (Failed outranks it);
* a forEach step runs once per item (see :mod:`kubehatch._localitems`); a step that
  waits (a time, an event, an approval) waits on the clock for what the caller gives
  (see :mod:`kubehatch._localwaits`);
* a step that returns a spawn request (``ctx.spawn``) runs the child workflows here, from
  the same worker (see :mod:`kubehatch._localspawn`);
* then the hooks: onFailure when a step failed, onSuccess when none failed or was
  cancelled, then onExit, with the failed steps' messages (``ctx.step_run_errors()``);
* the run's ``timeout``, counted on the clock, skips what has not started when it passes.

Middleware runs as in a step pod (the worker's, then the service's). Concurrency limits,
rate limits and triggers are the operator's business and are not applied here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubehatch import _localspawn
from kubehatch._localattempts import Clock, Ended, SystemClock, run_attempts
from kubehatch._localitems import run_items
from kubehatch._localresult import LocalRun, StepEvent
from kubehatch._localwaits import Answer, Given, given, wait_locally
from kubehatch._serialization import JSONValue
from kubehatch.api import outputs, wire
from kubehatch.api.graph import topological_order
from kubehatch.api.hooks import Hook, why_not
from kubehatch.api.inputschema import input_problems
from kubehatch.api.readiness import (
    Readiness,
    Unreadable,
    by_condition,
    by_parents,
    parent_values,
    succeeded_parents,
)
from kubehatch.api.workflow import StepSpec, WorkflowSpec
from kubehatch.api.workflowrun import StepPhase
from kubehatch.context import Context
from kubehatch.durations import parse_duration
from kubehatch.errors import KubehatchError, OutputTooLargeError
from kubehatch.worker import Worker

__all__ = ["Clock", "LocalRun", "StepEvent", "SystemClock", "run_local"]
FAILED = (StepPhase.FAILED, StepPhase.TIMED_OUT)


def run_local(
    worker: Worker,
    workflow: str,
    workflow_input: Any = None,
    *,
    clock: Clock | None = None,
    run_name: str = "local",
    on_event: Callable[[StepEvent], None] | None = None,
    additional_metadata: dict[str, str] | None = None,
    events: Iterable[Any] | None = None,
    approvals: Mapping[str, Answer] | None = None,
) -> LocalRun:
    """Run ``workflow`` of ``worker`` to its end; see the module documentation.

    ``additional_metadata`` is the run's (what ``skipIf`` and ``runIf`` read as
    ``additional_metadata``; child runs get it too). ``events`` are what ``WaitForEvent``
    steps may take (``(key, data)``, ``(key, data, metadata)``; see
    :mod:`kubehatch._localwaits`), ``approvals`` the answers to ``Approval`` steps by
    step name (``True``, ``False`` or ``(bool, comment)``; ``<child run>/<step>`` for a
    step of a child run)."""
    worker.check()
    spec = worker.get_workflow(workflow).spec
    assert spec is not None  # check() passed
    things = given(events, approvals, spec, workflow)
    engine = _Engine(worker, workflow, spec, clock or SystemClock(), run_name, on_event)
    engine.metadata, engine.given = dict(additional_metadata or {}), things
    return engine.run({} if workflow_input is None else workflow_input)


class _Engine:
    def __init__(
        self,
        worker: Worker,
        workflow: str,
        spec: WorkflowSpec,
        clock: Clock,
        run_name: str,
        on_event: Callable[[StepEvent], None] | None,
        depth: int = 0,
    ) -> None:
        self.worker = worker
        self.spec = spec
        self.clock = clock
        self.run_name = run_name
        self.on_event = on_event
        self.depth = depth
        self.metadata: dict[str, str] = {}
        self.given = Given()
        self.path = ""
        """``<child run>/`` for the steps of a child run (as their events name them)."""
        self.result = LocalRun(workflow)
        self.phases: dict[str, StepPhase] = {}
        self.order: list[str] = []
        self.started = clock.now()
        self.deadline = self.started + parse_duration(spec.timeout) if spec.timeout else None

    def emit(
        self, step: str, phase: str, attempt: int, message: str = "", output: JSONValue = None
    ) -> None:
        event = StepEvent(step, phase, attempt, self.clock.now(), message, output)
        self.result.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def run(self, workflow_input: Any) -> LocalRun:
        result, spec = self.result, self.spec
        problems = input_problems(spec.input_schema, workflow_input)
        if problems is not None:
            result.phase = "Failed"
            result.message = f"InvalidInput: the input does not fit the workflow: {problems}"
            return result
        order = self.order = topological_order([(s.name, s.parents) for s in spec.steps])
        for name in order:
            self._next(spec.get_step(name), workflow_input)
        hooks = sorted(spec.hooks, key=lambda hook: list(Hook).index(hook[0]))  # onExit last
        any_failed = any(self.phases[n] in FAILED for n in order)
        cancelled = any(self.phases[n] is StepPhase.CANCELLED for n in order)
        for hook, step in hooks:
            skipped = why_not(hook, any_failed, cancelled)
            if self._timed_out() is not None:
                self._end(step.name, StepPhase.SKIPPED, f"not started: {self._timed_out()}")
            elif skipped is None:
                self._run_step(step, workflow_input, {}, self._failures(step.name))
            else:
                self._end(step.name, StepPhase.SKIPPED, f"not run: {skipped}")
        names = [*order, *(step.name for _, step in hooks)]
        failure, cancellation = self._failure(names), self._cancellation(names)
        if result.phase == "TimedOut":
            result.message = f"the run exceeded its timeout of {spec.timeout}"
        elif failure is not None:
            result.phase, result.message = "Failed", failure
        elif cancellation is not None:  # Failed outranks Cancelled
            result.phase, result.message = "Cancelled", cancellation
        else:
            result.phase = "Succeeded"
        return result

    def _next(self, step: StepSpec, workflow_input: Any) -> None:
        """Run, skip or fail one step whose parents are done, as the operator would."""
        stopped = self._stopped()
        if stopped is not None:
            self._end(step.name, StepPhase.SKIPPED, f"not started: {stopped}")
            return
        verdict = by_parents(step, self.phases)
        if verdict.run:
            given = succeeded_parents(step, self.phases)
            verdict = by_condition(
                step,
                self.phases,
                workflow_input,
                self.metadata,
                {p: _as_read(p, self.result.outputs.get(p)) for p in given},
            )
        if verdict.skip is not None:
            self._end(step.name, StepPhase.SKIPPED, verdict.skip)
        elif verdict.fail is not None:
            self._end(step.name, StepPhase.FAILED, verdict.fail, KubehatchError(verdict.fail))
        else:
            assert verdict.run, "every parent of a step is done before it is looked at"
            parents = {p: self.result.outputs[p] for p in succeeded_parents(step, self.phases)}
            self._run_step(step, workflow_input, parents)

    def _stopped(self) -> str | None:
        """Why the run starts no more steps: its timeout, or a failure with failFast
        (the hooks still run then)."""
        timed_out = self._timed_out()
        if timed_out is None and self.spec.fail_fast:
            return self._failure(self.order)
        return timed_out

    def _timed_out(self) -> str | None:
        if self.result.phase == "TimedOut" or (
            self.deadline is not None and self.clock.now() >= self.deadline
        ):
            self.result.phase = "TimedOut"
            return f"the run exceeded its timeout of {self.spec.timeout}"
        return None

    def _failure(self, names: list[str]) -> str | None:
        """What the first failed step says (the run's message), as the operator's."""
        failed = next((n for n in names if self.phases.get(n) in FAILED), None)
        if failed is None:
            return None
        verb = "timed out" if self.phases[failed] is StepPhase.TIMED_OUT else "failed"
        text = self.result.messages.get(failed, "no message").removeprefix("failed: ")
        return f"step {failed} {verb}: {text}"

    def _cancellation(self, names: list[str]) -> str | None:
        """What the first step that cancelled itself says, as the operator's."""
        name = next((n for n in names if self.phases.get(n) is StepPhase.CANCELLED), None)
        if name is None:
            return None
        return f"step {name} was cancelled: {self.result.messages.get(name, 'no message')}"

    def _failures(self, hook: str) -> dict[str, str]:
        """What the failed steps said, for a hook (``ctx.step_run_errors()``)."""
        names = [s.name for s in self.spec.all_steps if s.name != hook]
        return {n: self.result.messages[n] for n in names if self.phases.get(n) in FAILED}

    def _end(
        self,
        name: str,
        phase: StepPhase,
        message: str | None,
        error: BaseException | None = None,
        attempt: int = 0,
        output: JSONValue = None,
    ) -> None:
        self.phases[name] = phase
        self.result.phases[name] = phase.value
        if message is not None:
            self.result.messages[name] = message
        if error is not None:
            error.add_note(f"in step {name!r} of workflow {self.result.workflow!r}")
            self.result.errors[name] = error
        if phase is StepPhase.SUCCEEDED:
            self.result.outputs[name] = output
        self.emit(name, phase.value, attempt, message or "", output)

    def _run_step(
        self,
        step: StepSpec,
        workflow_input: Any,
        parents: dict[str, JSONValue],
        failures: dict[str, str] | None = None,
    ) -> None:
        name = step.name
        if step.wait is not None:
            self._wait(step, workflow_input, parents)
            return
        if step.for_each:
            read = {p: _as_read(p, output) for p, output in parents.items()}
            values = parent_values(step, self.phases, read, "forEach")

            def run_item(index: int, item: Any) -> Ended:
                return self._attempts(step, workflow_input, parents, failures, index, item)

            ended = run_items(step, workflow_input, self.metadata, values, run_item)
        else:
            ended = self._attempts(step, workflow_input, parents, failures)
            if ended.phase is StepPhase.SUCCEEDED:
                self._spawned(step, ended.output, ended.attempt)
                return
        self._end(name, ended.phase, ended.message, ended.error, ended.attempt, ended.output)

    def _attempts(
        self,
        step: StepSpec,
        workflow_input: Any,
        parents: dict[str, JSONValue],
        failures: dict[str, str] | None,
        index: int | None = None,
        item: Any = None,
    ) -> Ended:
        """The attempts of a step, or of one item of a forEach step."""
        shown = step.name if index is None else f"{step.name}[{index}]"

        def context(attempt: int) -> Context:
            return Context(
                workflow_input=workflow_input,
                parent_outputs=parents,
                step_name=step.name,
                workflow_name=self.result.workflow,
                run_name=self.run_name,
                retry_count=attempt - 1,
                failures=failures,
                item=item,
                item_index=index,
            )

        def emit(phase: str, attempt: int, message: str) -> None:
            attempts = self.result.attempts
            attempts[step.name] = max(attempt, attempts.get(step.name, 0))
            self.emit(shown, phase, attempt, message)

        action = self.worker.resolve_action(self.spec.qualified_action(step))
        ended = run_attempts(action, step, context, self.clock, emit)
        if index is not None:  # an item: its end is heard too, the step's comes later
            self.emit(shown, ended.phase.value, ended.attempt, ended.message or "", ended.output)
        return ended

    def _wait(self, step: StepSpec, workflow_input: Any, parents: dict[str, JSONValue]) -> None:
        """A step that waits, on the clock, for what the caller gave."""
        self.emit(step.name, "Running", 1)
        read = {p: _as_read(p, output) for p, output in parents.items()}
        values = parent_values(step, self.phases, read, "wait.until")
        if not isinstance(values, Readiness):
            values = {p: v for p, v in values.items() if not isinstance(v, Unreadable)}
        ended = wait_locally(
            step, f"{self.path}{step.name}", self.clock, self.deadline, self.given,
            workflow_input, self.metadata, values,
        )  # fmt: skip
        self.result.attempts[step.name] = 1
        message = ended.message
        if ended.run_timed_out:
            self.result.phase = "TimedOut"
            message = f"the run exceeded its timeout of {self.spec.timeout}"
        self._end(step.name, ended.phase, message, ended.error, 1, ended.output)

    def _spawned(self, step: StepSpec, output: JSONValue, attempt: int) -> None:
        """A succeeded attempt: its output, or the child runs it asks for and their results."""

        def run_child(workflow: str, spec: WorkflowSpec, data: dict[str, Any], name: str) -> Any:
            child = self._run_child(workflow, spec, data, name)
            self.result.children.setdefault(step.name, []).append(child)
            return child

        spawned = _localspawn.run_children(
            output, self.spec, self._spec_of, self.run_name, step.name, run_child, self.depth
        )
        if spawned.failure is not None:
            error = KubehatchError(spawned.failure)
            self._end(step.name, StepPhase.FAILED, spawned.failure, error, attempt)
        else:
            self._end(step.name, StepPhase.SUCCEEDED, None, None, attempt, spawned.output)

    def _spec_of(self, workflow: str) -> WorkflowSpec | None:
        found = next((w for w in self.worker.workflows if w.name == workflow), None)
        return found.spec if found is not None else None

    def _run_child(
        self, workflow: str, spec: WorkflowSpec, child_input: dict[str, Any], name: str
    ) -> LocalRun:
        def forward(event: StepEvent) -> None:
            if self.on_event is not None:
                self.on_event(dataclasses.replace(event, step=f"{name}/{event.step}"))

        child = _Engine(
            self.worker, workflow, spec, self.clock, name, forward, depth=self.depth + 1
        )
        child.metadata, child.given = self.metadata, self.given
        child.path = f"{self.path}{name}/"
        return child.run(child_input)


def _as_read(step: str, output: JSONValue) -> Any:
    """A parent's output as a condition reads it on a cluster: `Unreadable` past what the
    operator reads (``outputs.MAX_OPERATOR_READ_BYTES`` of JSON)."""
    raw = json.dumps(output, separators=(",", ":")).encode()
    what, limit = f"the output of step {step!r}", outputs.MAX_OPERATOR_READ_BYTES
    try:
        return outputs.decode(
            {wire.OUTPUT_KEY: raw}, lambda _: None, what=what, limit=limit,
            reader=outputs.OPERATOR_READER,
        )  # fmt: skip
    except OutputTooLargeError as error:
        return Unreadable(str(error))
