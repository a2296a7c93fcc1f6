import asyncio
import threading
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from kubehatch import Context, Fn, InputError, StepCancelledError, UnknownParentError


class User(BaseModel):
    username: str


@dataclass
class Total:
    amount: int


def produce_total(ctx: Context) -> Total:
    return Total(1)


def make(**kwargs: object) -> Context:
    defaults: dict[str, object] = {
        "workflow_input": {"username": "ada"},
        "parent_outputs": {"step-one": {"amount": 3}, "quiet": None},
        "step_name": "step-two",
        "workflow_name": "wf",
        "run_name": "wf-abc",
        "retry_count": 2,
    }
    return Context(**{**defaults, **kwargs})  # type: ignore[arg-type]


def test_plain_data_in_plain_data_out() -> None:
    ctx = make()
    assert ctx.workflow_input() == {"username": "ada"}
    assert ctx.step_output("step-one") == {"amount": 3}
    assert ctx.step_output("quiet") is None
    assert (ctx.step_name, ctx.workflow_name, ctx.run_name, ctx.retry_count) == (
        "step-two",
        "wf",
        "wf-abc",
        2,
    )
    assert ctx.parents == ("step-one", "quiet")
    assert "step-two" in repr(ctx)


def test_defaults() -> None:
    ctx = Context()
    assert ctx.workflow_input() == {}
    assert ctx.parents == ()
    assert ctx.retry_count == 0
    assert not ctx.is_cancelled()


def test_input_and_outputs_parse_into_models() -> None:
    ctx = make()
    assert ctx.workflow_input(User) == User(username="ada")
    assert ctx.step_output("step-one", Total) == Total(3)


def test_an_fn_parent_parses_into_its_declared_return_type() -> None:
    step_one = Fn(produce_total).set_name("step-one")
    assert make().step_output(step_one) == Total(3)


def test_input_that_does_not_fit_the_model_is_a_permanent_input_error() -> None:
    with pytest.raises(InputError, match="input of workflow 'wf' does not match User"):
        make(workflow_input={"name": "ada"}).workflow_input(User)
    with pytest.raises(InputError, match="output of step 'step-one' does not match User"):
        make().step_output("step-one", User)


def test_asking_for_a_step_that_is_not_a_parent_names_the_parents_and_the_fix() -> None:
    with pytest.raises(UnknownParentError) as caught:
        make().step_output("step-three")
    assert str(caught.value) == (
        "step 'step-two' has no parent 'step-three' (its parents: 'step-one', 'quiet'); "
        "add it with .add_parents('step-three') to receive its output"
    )


def test_with_value_returns_a_copy_sharing_cancellation() -> None:
    ctx = make()
    child = ctx.with_value("testkey", "testvalue")
    assert child.value("testkey") == "testvalue"
    assert ctx.value("testkey") is None
    assert child.value("missing", "fallback") == "fallback"
    assert child.workflow_input() == ctx.workflow_input()
    assert child.retry_count == 2
    ctx.cancel()
    assert child.is_cancelled()


def test_the_engine_can_hand_in_its_own_cancel_event() -> None:
    event = threading.Event()
    ctx = Context(cancelled=event, step_name="s", run_name="r")
    assert ctx.cancelled is event
    ctx.raise_if_cancelled()
    event.set()
    with pytest.raises(StepCancelledError, match="step 's' of run 'r' was cancelled"):
        ctx.raise_if_cancelled()


def test_wait_for_cancel() -> None:
    ctx = Context()
    assert ctx.wait_for_cancel(0.01) is False
    threading.Timer(0.01, ctx.cancel).start()
    assert ctx.wait_for_cancel(5) is True


def test_wait_for_cancel_async() -> None:
    ctx = Context()

    async def scenario() -> tuple[bool, bool]:
        early = await ctx.wait_for_cancel_async(0.01)
        asyncio.get_running_loop().call_later(0.01, ctx.cancel)
        late = await ctx.wait_for_cancel_async(5)
        return early, late

    assert asyncio.run(scenario()) == (False, True)
