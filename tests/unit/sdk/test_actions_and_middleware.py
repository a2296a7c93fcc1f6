"""Resolving actions on a worker and running them through the middleware chain."""

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from kubehatch import (
    Context,
    Fn,
    KubehatchError,
    Next,
    RegistrationError,
    UnknownActionError,
    Worker,
    WorkflowJob,
    run_step,
    run_step_async,
)


class Out(BaseModel):
    value: int


def recorder(log: list[str], label: str) -> Any:
    def middleware(ctx: Context, next: Next) -> Any:
        log.append(f"{label}:before")
        result = next(ctx)
        log.append(f"{label}:after")
        return result

    return middleware


def async_recorder(log: list[str], label: str) -> Any:
    async def middleware(ctx: Context, next: Next) -> Any:
        log.append(f"{label}:before")
        result = await next(ctx)
        log.append(f"{label}:after")
        return result

    return middleware


def nothing(ctx: Context) -> None:
    return None


def three(ctx: Context) -> Out:
    return Out(value=3)


def register(worker: Worker, func: Any, service: str = "svc") -> str:
    worker.new_service(service).register_workflow(WorkflowJob(name="wf", steps=[Fn(func)]))
    return f"{service}:{Fn(func).name}"


def test_worker_middleware_wraps_service_middleware_which_wraps_the_step(
    worker: Worker,
) -> None:
    log: list[str] = []

    def step(ctx: Context) -> str:
        log.append("step")
        return "done"

    action = register(worker, step)
    worker.use(recorder(log, "w1"), recorder(log, "w2"))
    worker.new_service("svc").use(recorder(log, "s1"))
    assert worker.resolve_action(action).invoke(Context()) == "done"
    assert log == [
        "w1:before",
        "w2:before",
        "s1:before",
        "step",
        "s1:after",
        "w2:after",
        "w1:after",
    ]


@pytest.mark.parametrize("async_middleware", [False, True])
@pytest.mark.parametrize("async_step", [False, True])
def test_sync_and_async_mix(worker: Worker, async_middleware: bool, async_step: bool) -> None:
    log: list[str] = []

    def sync_step(ctx: Context) -> dict[str, Any]:
        return {"kind": "sync", "key": ctx.value("key")}

    async def async_step_fn(ctx: Context) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"kind": "async", "key": ctx.value("key")}

    def sync_value(ctx: Context, next: Next) -> Any:
        return next(ctx.with_value("key", "v"))

    async def async_value(ctx: Context, next: Next) -> Any:
        return await next(ctx.with_value("key", "v"))

    action = register(worker, async_step_fn if async_step else sync_step)
    make = async_recorder if async_middleware else recorder
    worker.use(make(log, "outer"), async_value if async_middleware else sync_value)
    result = worker.resolve_action(action).invoke(Context())
    assert result == {"kind": "async" if async_step else "sync", "key": "v"}
    assert log == ["outer:before", "outer:after"]


def test_middleware_can_replace_the_result_without_calling_next(worker: Worker) -> None:
    called = []
    action = register(worker, lambda ctx: called.append(1))
    worker.use(lambda ctx, next: "cached")
    assert worker.resolve_action(action).invoke(Context()) == "cached"
    assert called == []


class Wrapped(Exception):
    pass


def test_middleware_can_wrap_errors(worker: Worker) -> None:
    def failing(ctx: Context) -> None:
        raise ValueError("boom")

    def wrap(ctx: Context, next: Next) -> Any:
        try:
            return next(ctx)
        except ValueError as error:
            raise Wrapped(f"error in middleware: {error}") from error

    action = register(worker, failing)
    worker.use(wrap)
    with pytest.raises(Wrapped, match="error in middleware: boom"):
        worker.resolve_action(action).invoke(Context())


def test_errors_reach_the_caller_unchanged_without_middleware(worker: Worker) -> None:
    def failing(ctx: Context) -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        worker.resolve_action(register(worker, failing)).invoke(Context())


def test_a_middleware_can_retry_by_calling_next_again(worker: Worker) -> None:
    attempts: list[int] = []

    def flaky(ctx: Context) -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("flaky")
        return len(attempts)

    def retry(ctx: Context, next: Next) -> Any:
        for _ in range(5):
            try:
                return next(ctx)
            except RuntimeError:
                continue
        raise AssertionError("unreachable")

    action = register(worker, flaky)
    worker.use(retry)
    assert worker.resolve_action(action).invoke(Context()) == 3


def test_deep_sync_chains_do_not_exhaust_threads(worker: Worker) -> None:
    action = register(worker, lambda ctx: "deep")
    worker.use(*[lambda ctx, next: next(ctx) for _ in range(40)])
    assert worker.resolve_action(action).invoke(Context()) == "deep"


def test_next_needs_a_context(worker: Worker) -> None:
    action = register(worker, lambda ctx: None)
    worker.use(lambda ctx, next: next({"not": "a context"}))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="next\\(\\) needs a Context, got dict"):
        worker.resolve_action(action).invoke(Context())


def test_run_serialises_the_output(worker: Worker) -> None:
    action = worker.resolve_action(register(worker, three))
    assert action.name == "svc:three"
    assert action.invoke(Context()) == Out(value=3)
    assert action.run(Context()) == {"value": 3}
    assert run_step(worker, "svc:three", Context()) == {"value": 3}


def test_async_forms_inside_an_event_loop(worker: Worker) -> None:
    action = worker.resolve_action(register(worker, lambda ctx: Out(value=1)))

    async def scenario() -> Any:
        with pytest.raises(KubehatchError, match="await the \\*_async form"):
            action.invoke(Context())
        return await action.invoke_async(Context()), await run_step_async(
            worker, action.name, Context()
        )

    assert asyncio.run(scenario()) == (Out(value=1), {"value": 1})


def test_unknown_actions_list_what_is_registered(worker: Worker) -> None:
    register(worker, nothing)
    with pytest.raises(UnknownActionError, match=r"registered: svc:nothing$"):
        worker.resolve_action("svc:other")
    with pytest.raises(UnknownActionError, match="write it as 'service:action'"):
        worker.resolve_action("nothing")
    with pytest.raises(UnknownActionError, match="not registered on worker 'test-worker'"):
        worker.resolve_action("nope:nothing")


def test_a_broken_worker_refuses_to_run_anything(worker: Worker) -> None:
    action = register(worker, lambda ctx: None)
    worker.register_workflow(WorkflowJob(name="Bad Name", steps=[Fn(lambda ctx: None)]))
    with pytest.raises(RegistrationError, match="'Bad Name' is not a valid name"):
        worker.resolve_action(action)


def test_a_step_pod_refuses_a_broken_registration_but_leaves_specs_to_render(
    worker: Worker,
) -> None:
    """``check_specs=False`` (``kubehatch step``): no API models, so no spec validation."""
    action = register(worker, three)
    worker.register_workflow(WorkflowJob(name="slow", steps=[Fn(nothing).set_timeout("5 min")]))
    with pytest.raises(RegistrationError, match="'5 min' is not a duration"):
        worker.resolve_action(action)
    assert worker.resolve_action(action, check_specs=False).run(Context()) == {"value": 3}
    worker.register_workflow(WorkflowJob(name="calls", steps=[worker.call("svc:missing")]))
    worker.register_workflow(WorkflowJob(name="Bad Name", steps=[Fn(nothing)]))
    with pytest.raises(RegistrationError) as caught:
        worker.resolve_action(action, check_specs=False)
    assert [problem.message for problem in caught.value.problems] == [
        "action 'svc:missing' is not registered (registered: svc:three, slow:nothing, "
        "bad-name:nothing)",
        "'Bad Name' is not a valid name: use at most 63 lowercase letters, digits and '-', "
        "starting and ending with a letter or digit, e.g. 'step-one'",
    ]


def test_actions_know_their_service(worker: Worker) -> None:
    action = worker.resolve_action(register(worker, lambda ctx: None, service="billing"))
    assert action.action.service == "billing"


REQUEST = contextvars.ContextVar[str]("request", default="none")


def test_each_sync_callable_runs_in_a_thread_of_its_own_in_a_copy_of_the_context(
    worker: Worker,
) -> None:
    """With or without an event loop: the same threads, the same context variables."""
    seen: list[tuple[str, str, int]] = []

    def step(ctx: Context) -> str:
        seen.append(("step", REQUEST.get(), threading.get_ident()))
        REQUEST.set("changed by the step")
        return threading.current_thread().name

    def outer(ctx: Context, next: Next) -> Any:
        seen.append(("outer", REQUEST.get(), threading.get_ident()))
        REQUEST.set("set by outer")
        result = next(ctx)
        seen.append(("outer", REQUEST.get(), threading.get_ident()))
        return result

    action = register(worker, step)
    worker.use(outer)
    REQUEST.set("caller's")
    assert worker.resolve_action(action).invoke(Context()) == "kubehatch-step"
    assert REQUEST.get() == "caller's"
    assert [(where, value) for where, value, _ in seen] == [
        ("outer", "caller's"),
        ("step", "set by outer"),
        ("outer", "set by outer"),
    ]
    outer_thread, step_thread = seen[0][2], seen[1][2]
    assert len({threading.get_ident(), outer_thread, step_thread}) == 3
    assert seen[2][2] == outer_thread


def test_a_sync_steps_base_exceptions_reach_the_caller(worker: Worker) -> None:
    def leave(ctx: Context) -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit) as leaving:
        worker.resolve_action(register(worker, leave)).invoke(Context())
    assert leaving.value.code == 3


def test_asyncio_loads_only_for_a_chain_with_something_async() -> None:
    """A sync chain (the common step) runs without an event loop: asyncio is a large import,
    paid in every step pod."""
    script = textwrap.dedent(
        """
        import sys
        from kubehatch import Context, Fn, Worker, WorkflowJob

        def step(ctx):
            return "sync"

        async def async_step(ctx):
            return "async"

        worker = Worker("w", image="i:1").use(lambda ctx, next: next(ctx))
        worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step), Fn(async_step)]))
        assert worker.resolve_action("wf:step").run(Context()) == "sync"
        print("asyncio" in sys.modules)
        assert worker.resolve_action("wf:async-step").run(Context()) == "async"
        print("asyncio" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "True"]
