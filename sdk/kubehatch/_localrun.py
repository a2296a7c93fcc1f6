"""The local engine: a workflow run in this process, as the operator would run it on a cluster.

What :mod:`kubehatch.testing` and ``kubehatch run WF --local`` use. It follows the
operator's rules, one step at a time in dependency order, and ends each step with the
phase and message the operator's status would show:

* the input is checked against the Workflow's ``inputSchema`` first (reason InvalidInput);
* a step's ``parentRule`` decides when its parents let it run (AllSucceeded by default,
  AllDone, AnySucceeded), then its ``skipIf`` / ``runIf`` CEL over ``input``,
  ``additional_metadata`` and the outputs of its parents that succeeded, which are all it
  receives (``ctx.parents``): the rules are the operator's own, :mod:`kubehatch.api.readiness`;
* a failed attempt is retried up to ``retries`` times (never after a ``PermanentError``),
  waiting the step's backoff (default 10s doubling up to 5m) on the given clock;
* an attempt longer than the step's ``timeout`` is cancelled (``ctx.cancelled`` is set) and
  fails with :class:`~kubehatch.errors.StepTimeoutError`;
* a step that fails for good skips the steps below it that need it, the other branches
  go on (with ``fail_fast`` the rest is skipped);
* a step that returns a spawn request (``ctx.spawn``) runs the child workflows here, from
  the same worker (see :mod:`kubehatch._localspawn`);
* then the hooks: onFailure when a step failed, onSuccess when none did, then onExit,
  with the failed steps' messages (``ctx.step_run_errors()``);
* the run's ``timeout``, counted on the clock, skips what has not started when it passes.

Middleware runs as in a step pod (the worker's, then the service's). Concurrency limits,
rate limits and triggers are the operator's business and are not applied here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kubehatch import _localspawn
from kubehatch._serialization import JSONValue
from kubehatch.api import outputs, wire
from kubehatch.api.graph import topological_order
from kubehatch.api.hooks import Hook, why_not
from kubehatch.api.inputschema import input_problems
from kubehatch.api.readiness import Unreadable, by_condition, by_parents, succeeded_parents
from kubehatch.api.workflow import Backoff, StepSpec, WorkflowSpec
from kubehatch.api.workflowrun import StepPhase
from kubehatch.context import Context
from kubehatch.durations import parse_duration
from kubehatch.errors import KubehatchError, OutputTooLargeError, PermanentError, StepTimeoutError
from kubehatch.worker import Worker

DEFAULT_BACKOFF = Backoff()
CANCEL_GRACE_SECONDS = 1.0
"""How long an attempt that timed out may take to stop once ``ctx.cancelled`` is set."""
FAILED = (StepPhase.FAILED, StepPhase.TIMED_OUT)


class Clock(Protocol):
    """Where the engine reads the time and waits: the system's, or a fake one in tests."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real time; waiting blocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0))


@dataclass(frozen=True)
class StepEvent:
    """A step changed phase (what ``on_event`` hears, and ``kubehatch run --local`` prints)."""

    step: str
    """The step's name; ``<child run>/<step>`` for a step of a child run."""
    phase: str
    """Running, Succeeded, Retrying, Failed, TimedOut or Skipped."""
    attempt: int
    at: datetime
    message: str = ""
    output: JSONValue = None
    """The step's output, on Succeeded."""


@dataclass
class LocalRun:
    """The result of a local run."""

    workflow: str
    outputs: dict[str, JSONValue] = field(default_factory=dict)
    """Each step's output as the engine would store it (JSON data)."""
    attempts: dict[str, int] = field(default_factory=dict)
    """Attempts each step took (1 when it succeeded the first time)."""
    phases: dict[str, str] = field(default_factory=dict)
    """Each step's final phase: Succeeded, Failed, TimedOut or Skipped."""
    messages: dict[str, str] = field(default_factory=dict)
    """Why each step that did not succeed ended as it did, as the run's status on a
    cluster says it ("not run: parent a failed", "skipped: skipIf '...' was true",
    "failed: ValueError: ..."; a pod's message also has the traceback's tail)."""
    errors: dict[str, BaseException] = field(default_factory=dict)
    """The last error of each step that failed."""
    children: dict[str, list[LocalRun]] = field(default_factory=dict)
    """The child runs of each step that spawned some, in order."""
    events: list[StepEvent] = field(default_factory=list)
    phase: str = "Running"
    """Succeeded, Failed or TimedOut once finished."""
    message: str = ""
    """Why the run did not succeed."""

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"


def run_local(
    worker: Worker,
    workflow: str,
    workflow_input: Any = None,
    *,
    clock: Clock | None = None,
    run_name: str = "local",
    on_event: Callable[[StepEvent], None] | None = None,
    additional_metadata: dict[str, str] | None = None,
) -> LocalRun:
    """Run ``workflow`` of ``worker`` to its end; see the module documentation.

    ``additional_metadata`` is the run's (what ``skipIf`` and ``runIf`` read as
    ``additional_metadata``; child runs get it too)."""
    worker.check()
    spec = worker.get_workflow(workflow).spec
    assert spec is not None  # check() passed
    engine = _Engine(worker, workflow, spec, clock or SystemClock(), run_name, on_event)
    engine.metadata = dict(additional_metadata or {})
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
        for hook, step in hooks:
            skipped = why_not(hook, any_failed)
            if self._timed_out() is not None:
                self._end(step.name, StepPhase.SKIPPED, f"not started: {self._timed_out()}")
            elif skipped is None:
                self._run_step(step, workflow_input, {}, self._failures(step.name))
            else:
                self._end(step.name, StepPhase.SKIPPED, f"not run: {skipped}")
        failure = self._failure([*order, *(step.name for _, step in hooks)])
        if result.phase == "TimedOut":
            result.message = f"the run exceeded its timeout of {spec.timeout}"
        elif failure is not None:
            result.phase, result.message = "Failed", failure
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
        result, name = self.result, step.name
        action = self.worker.resolve_action(self.spec.qualified_action(step))
        timeout = parse_duration(step.timeout).total_seconds() if step.timeout else None
        for attempt in range(1, step.retries + 2):
            result.attempts[name] = attempt
            self.emit(name, "Running", attempt)
            ctx = Context(
                workflow_input=workflow_input,
                parent_outputs=parents,
                step_name=name,
                workflow_name=result.workflow,
                run_name=self.run_name,
                retry_count=attempt - 1,
                failures=failures,
            )
            try:
                output = asyncio.run(_attempt(action.run_async(ctx), ctx, timeout))
            except Exception as error:
                timed_out = isinstance(error, StepTimeoutError)
                why = (
                    f"exceeded the step timeout of {step.timeout}"
                    if timed_out
                    else f"failed: {_describe(error)}"
                )
                if not isinstance(error, PermanentError) and attempt <= step.retries:
                    delay = (step.backoff or DEFAULT_BACKOFF).delay(attempt)
                    self.emit(name, "Retrying", attempt, f"{_describe(error)}; next in {delay}")
                    self.clock.sleep(delay.total_seconds())
                    continue
                after = f" after {attempt} attempts" if attempt > 1 else ""
                phase = StepPhase.TIMED_OUT if timed_out else StepPhase.FAILED
                self._end(name, phase, f"{why}{after}", error, attempt)
                return
            self._spawned(step, output, attempt)
            return

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
        child.metadata = self.metadata
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


async def _attempt(work: Any, ctx: Context, timeout: float | None) -> JSONValue:
    """One attempt, cancelled (``ctx.cancelled`` set) when it outlasts ``timeout`` seconds."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        ctx.cancel()  # a sync step in its thread sees it; an async one is cancelled too
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE_SECONDS)  # as a pod's grace period
        raise StepTimeoutError(
            f"step {ctx.step_name!r} exceeded its timeout of {timedelta(seconds=timeout or 0)}"
        ) from None


def _describe(error: BaseException) -> str:
    """``Type: message``, as a step pod reports a failure."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
