import functools
from dataclasses import dataclass

from pydantic import BaseModel

from kubehatch._signatures import call_problem, callable_name, is_async_callable, return_type


class Model(BaseModel):
    a: int


@dataclass
class Data:
    a: int


def plain(ctx: object) -> Model: ...


async def coroutine(ctx: object) -> Data: ...


def with_default(ctx: object, retries: int = 3) -> dict[str, int]: ...


def keyword_only(ctx: object, *, required: int) -> None: ...


class AsyncCallable:
    async def __call__(self, ctx: object) -> None: ...


def test_is_async_callable() -> None:
    assert not is_async_callable(plain)
    assert is_async_callable(coroutine)
    assert is_async_callable(functools.partial(coroutine))
    assert is_async_callable(AsyncCallable())


def test_call_problem_accepts_compatible_shapes() -> None:
    assert call_problem(plain, arguments=1, expected="step(ctx)") is None
    assert call_problem(with_default, arguments=1, expected="step(ctx)") is None
    assert call_problem(AsyncCallable(), arguments=1, expected="step(ctx)") is None
    assert call_problem(len, arguments=1, expected="step(ctx)") is None


def test_call_problem_explains_mismatches() -> None:
    problem = call_problem(keyword_only, arguments=1, expected="step(ctx)")
    assert problem == (
        "keyword_only(ctx: object, *, required: int) -> None cannot be called as step(ctx): "
        "missing a required argument: 'required'"
    )


def test_callable_name() -> None:
    assert callable_name(plain) == "plain"
    assert callable_name(functools.partial(plain)) == "plain"
    assert callable_name(AsyncCallable()) == "AsyncCallable"


def test_return_type_only_for_models_and_dataclasses() -> None:
    assert return_type(plain) is Model
    assert return_type(coroutine) is Data
    assert return_type(with_default) is None
    assert return_type(lambda ctx: None) is None
