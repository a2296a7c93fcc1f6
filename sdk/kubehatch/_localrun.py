"""The local engine: a workflow run in this process, as the operator would run it on a cluster.

What :mod:`kubehatch.testing` and ``kubehatch run WF --local`` use. It follows the
operator's rules, one step at a time in dependency order:

* the input is checked against the Workflow's ``inputSchema`` first (reason InvalidInput);
* a step runs once all its parents succeeded, with their outputs as stored JSON;
* a failed attempt is retried up to ``retries`` times (never after a ``PermanentError``),
  waiting the step's backoff (default 10s doubling up to 5m) on the given clock;
* an attempt longer than the step's ``timeout`` is cancelled (``ctx.cancelled`` is set) and
  fails with :class:`~kubehatch.errors.StepTimeoutError`;
* a step that fails for good skips the steps below it, the other branches go on (with
  ``fail_fast`` the rest is skipped); then the on-failure step runs, with the errors;
* the run's ``timeout``, counted on the clock, skips what has not started when it passes.

Middleware runs as in a step pod (the worker's, then the service's). Concurrency limits,
rate limits and triggers are the operator's business and are not applied here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kubehatch._serialization import JSONValue
from kubehatch.api.graph import topological_order
from kubehatch.api.inputschema import input_problems
from kubehatch.api.workflow import Backoff, StepSpec, WorkflowSpec
from kubehatch.context import Context
from kubehatch.durations import parse_duration
from kubehatch.errors import PermanentError, StepTimeoutError
from kubehatch.worker import Worker

DEFAULT_BACKOFF = Backoff()
CANCEL_GRACE_SECONDS = 1.0
"""How long an attempt that timed out may take to stop once ``ctx.cancelled`` is set."""


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
    errors: dict[str, BaseException] = field(default_factory=dict)
    """The last error of each step that failed."""
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
) -> LocalRun:
    """Run ``workflow`` of ``worker`` to its end; see the module documentation."""
    worker.check()
    spec = worker.get_workflow(workflow).spec
    assert spec is not None  # check() passed
    return _Engine(worker, workflow, spec, clock or SystemClock(), run_name, on_event).run(
        {} if workflow_input is None else workflow_input
    )


class _Engine:
    def __init__(
        self,
        worker: Worker,
        workflow: str,
        spec: WorkflowSpec,
        clock: Clock,
        run_name: str,
        on_event: Callable[[StepEvent], None] | None,
    ) -> None:
        self.worker = worker
        self.spec = spec
        self.clock = clock
        self.run_name = run_name
        self.on_event = on_event
        self.result = LocalRun(workflow)
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
        order = topological_order([(step.name, step.parents) for step in spec.steps])
        for name in order:
            step = spec.get_step(name)
            blocked = next((p for p in step.parents if result.phases.get(p) != "Succeeded"), None)
            if blocked is not None:
                self._skip(name, f"not run: parent {blocked} {result.phases[blocked].lower()}")
            elif spec.fail_fast and result.errors:
                self._skip(name, "not run: the run failed (failFast)")
            elif self.deadline is not None and self.clock.now() >= self.deadline:
                result.phase = "TimedOut"
                self._skip(name, f"not run: the run exceeded its timeout of {spec.timeout}")
            else:
                self._run_step(step, workflow_input, {p: result.outputs[p] for p in step.parents})
        failed = [n for n in order if n in result.errors]
        failures = {n: _describe(result.errors[n]) for n in failed}
        hooks = (  # onSuccess and onExit where the API has them (getattr)
            (spec.on_failure, bool(failed)),
            (getattr(spec, "on_success", None), not failed),
            (getattr(spec, "on_exit", None), True),
        )
        for hook, wanted in hooks:
            if hook is None:
                continue
            if wanted and result.phase != "TimedOut":
                self._run_step(hook, workflow_input, {}, failures)
            else:
                self._skip(hook.name, "not run")
        if result.phase == "TimedOut":
            result.message = f"the run exceeded its timeout of {spec.timeout}"
        elif failed:
            result.phase = "Failed"
            result.message = f"step {failed[0]} failed: {_describe(result.errors[failed[0]])}"
        else:
            result.phase = "Succeeded"
        return result

    def _skip(self, name: str, message: str) -> None:
        self.result.phases[name] = "Skipped"
        self.emit(name, "Skipped", 0, message)

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
        for attempt in range(step.retries + 1):
            result.attempts[name] = attempt + 1
            self.emit(name, "Running", attempt + 1)
            ctx = Context(
                workflow_input=workflow_input,
                parent_outputs=parents,
                step_name=name,
                workflow_name=result.workflow,
                run_name=self.run_name,
                retry_count=attempt,
                failures=failures,
            )
            try:
                result.outputs[name] = asyncio.run(_attempt(action.run_async(ctx), ctx, timeout))
            except Exception as error:
                last = isinstance(error, PermanentError) or attempt == step.retries
                if not last:
                    delay = (step.backoff or DEFAULT_BACKOFF).delay(attempt + 1)
                    self.emit(name, "Retrying", attempt + 1, f"{_describe(error)}; next in {delay}")
                    self.clock.sleep(delay.total_seconds())
                    continue
                error.add_note(f"in step {name!r} of workflow {result.workflow!r}")
                result.errors[name] = error
                phase = "TimedOut" if isinstance(error, StepTimeoutError) else "Failed"
                result.phases[name] = phase
                self.emit(name, phase, attempt + 1, _describe(error))
                return
            result.phases[name] = "Succeeded"
            self.emit(name, "Succeeded", attempt + 1, output=result.outputs[name])
            return


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
