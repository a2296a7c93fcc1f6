"""The decorator style (``worker.workflow`` and ``@wf.step``) beside the builder style."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from pydantic import BaseModel

from examples.regenerate import example_names
from kubehatch import (
    Backoff,
    Context,
    Cron,
    Event,
    Fn,
    RateLimit,
    RegistrationError,
    Worker,
    WorkflowJob,
    workflow_manifests,
)
from kubehatch.testing import run_workflow


def _manifests(worker: Worker) -> list[dict[str, Any]]:
    return workflow_manifests(worker)


@pytest.mark.parametrize("name", example_names())
def test_each_example_renders_the_same_in_both_styles(name: str) -> None:
    builder = importlib.import_module(f"examples.{name}").worker
    decorated = importlib.import_module(f"examples.decorated.{name}").worker
    assert _manifests(decorated) == _manifests(builder)
    assert sorted(decorated.action_names) == sorted(builder.action_names)


def greet(ctx: Context) -> dict[str, str]:
    return {"message": f"hello {ctx.workflow_input()['name']}"}


def test_the_readme_example_renders_the_same_in_both_styles() -> None:
    builder = Worker("hello", image="registry.example.com/hello:1")
    builder.register_workflow(
        WorkflowJob(name="hello", on=Event("user:created"), steps=[Fn(greet)])
    )

    decorated = Worker("hello", image="registry.example.com/hello:1")
    wf = decorated.workflow("hello", on=Event("user:created"))

    @wf.step(name="greet")  # a module-level function would be named "greet" as well
    def hello(ctx: Context) -> dict[str, str]:
        return {"message": f"hello {ctx.workflow_input()['name']}"}

    assert _manifests(decorated) == _manifests(builder)
    assert run_workflow(decorated, "hello", {"name": "ada"}).outputs == {
        "greet": {"message": "hello ada"}
    }


class Order(BaseModel):
    order_id: str
    quantity: int


class Priced(BaseModel):
    total: int


def test_steps_are_parents_and_typed_outputs_and_still_callable() -> None:
    worker = Worker("shop", image="img:1")
    wf = worker.workflow(
        "checkout", on=[Event("order:placed"), Cron("0 * * * *")], input_validator=Order
    )

    @wf.step(name="price", timeout="30s", retries=2, backoff=Backoff(initial="1s"))
    def price(ctx: Context) -> Priced:
        return Priced(total=wf.input(ctx).quantity * 3)

    @wf.step(parents=[price], name="charge-card", env={"MODE": "test"})
    async def charge(ctx: Context) -> dict[str, int]:
        priced = ctx.step_output(price)
        assert isinstance(priced, Priced)
        return {"charged": priced.total}

    assert isinstance(price, Fn) and price.name == "price"
    assert price(Context(workflow_input={"order_id": "o", "quantity": 2})) == Priced(total=6)
    spec = worker.workflow("checkout").spec
    assert spec is not None
    steps = {s.name: s for s in spec.steps}
    assert steps["price"].timeout == "30s" and steps["price"].retries == 2
    assert steps["price"].backoff == Backoff(initial="1s")
    assert steps["charge-card"].parents == ["price"]
    assert [(e.name, e.value) for e in steps["charge-card"].env] == [("MODE", "test")]
    assert spec.triggers.events == ["order:placed"] and spec.triggers.crons == ["0 * * * *"]
    assert spec.input_schema is not None and spec.input_schema["required"] == [
        "order_id",
        "quantity",
    ]
    run = run_workflow(worker, "checkout", {"order_id": "o-1", "quantity": 5})
    assert run.outputs == {"price": {"total": 15}, "charge-card": {"charged": 15}}


def test_on_failure_rate_limits_resources_and_image() -> None:
    worker = Worker("w", image="img:1")
    wf = worker.workflow("guarded", fail_fast=True, timeout="5m")

    @wf.step(
        name="work",
        image="other:2",
        requests={"cpu": "100m"},
        limits={"memory": "1Gi"},
        rate_limits=[RateLimit("api", limit=10, per="minute")],
    )
    def work(ctx: Context) -> None:
        raise ValueError("no")

    @wf.on_failure(name="cleanup")
    def cleanup(ctx: Context) -> dict[str, Any]:
        return {"errors": ctx.step_run_errors()}

    builder = Worker("w", image="img:1")

    def work_(ctx: Context) -> None: ...

    builder.register_workflow(
        WorkflowJob(
            name="guarded",
            fail_fast=True,
            timeout="5m",
            steps=[
                Fn(work_)
                .set_name("work")
                .set_image("other:2")
                .set_resources(requests={"cpu": "100m"}, limits={"memory": "1Gi"})
                .add_rate_limit(RateLimit("api", limit=10, per="minute"))
            ],
            on_failure=Fn(cleanup).set_name("cleanup"),
        )
    )
    assert _manifests(worker) == _manifests(builder)


def test_steps_added_after_a_read_count() -> None:
    worker = Worker("w", image="img:1")
    wf = worker.workflow("grows")

    @wf.step(name="one")
    def one(ctx: Context) -> int:
        return 1

    assert [s.name for s in worker.workflows[0].steps] == ["one"]

    @wf.step(name="two", parents=[one])
    def two(ctx: Context) -> int:
        return ctx.step_output(one) + 1

    assert [s.name for s in worker.workflows[0].steps] == ["one", "two"]
    assert worker.resolve_action("grows:two").action.func is two.func
    assert run_workflow(worker, "grows").outputs == {"one": 1, "two": 2}


def test_workflow_order_is_declaration_order_across_styles() -> None:
    worker = Worker("w", image="img:1")
    first = worker.workflow("first")
    worker.register_workflow(Fn(lambda ctx: None).set_name("second"))
    first.step(lambda ctx: None)
    assert [w.name for w in worker.workflows] == ["first", "second"]


def test_a_name_alone_looks_up_a_workflow_of_either_style() -> None:
    worker = Worker("w", image="img:1")
    worker.register_workflow(Fn(lambda ctx: None).set_name("built"))
    wf = worker.workflow("made", on=Event("x:y"))
    wf.step(lambda ctx: None)
    assert worker.workflow("made") is wf
    looked_up = worker.workflow("built")
    assert looked_up.service == "built" and looked_up.spec is not None
    assert worker.get_workflow("built").name == "built"
    looked_up.step(lambda ctx: None)  # cannot add to a builder-style workflow
    with pytest.raises(RegistrationError, match="register_workflow"):
        worker.check()
    with pytest.raises(KeyError, match="nope"):
        worker.get_workflow("nope")


def test_problems_point_at_the_decorator_lines() -> None:
    worker = Worker("w", image="img:1")
    wf = worker.workflow("broken", input_validator=int)

    @wf.step(timeout="soon", parents=["missing"])
    def bad(ctx: Context) -> None: ...

    with pytest.raises(RegistrationError) as caught:
        worker.check()
    text = str(caught.value)
    assert "test_decorators.py" in text
    assert "input_validator" in text and "JSON object" in text
    assert "timeout" in text and "missing" in text


def test_an_empty_decorated_workflow_is_a_problem() -> None:
    worker = Worker("w", image="img:1")
    worker.workflow("empty", on=Event("a:b"))
    with pytest.raises(RegistrationError, match="empty"):
        worker.check()


TYPED_SNIPPET = """
    from pydantic import BaseModel

    from kubehatch import Context, Worker


    class In(BaseModel):
        name: str


    class Out(BaseModel):
        message: str


    wf = Worker("w").workflow("typed", input_validator=In)
    untyped = Worker("w").workflow("untyped")


    @wf.step
    def first(ctx: Context) -> Out:
        return Out(message=wf.input(ctx).name)


    @wf.step(parents=[first], retries=1)
    async def second(ctx: Context) -> int:
        return 1


    def check(ctx: Context) -> None:
        reveal_type(wf)
        reveal_type(first)
        reveal_type(ctx.step_output(first))
        reveal_type(ctx.step_output(second))
        reveal_type(wf.input(ctx))
        reveal_type(untyped)
"""


def test_decorated_steps_are_typed_by_their_return_and_the_input_by_its_model(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.sdk import test_typing

    monkeypatch.setattr(test_typing, "SNIPPET", TYPED_SNIPPET)
    assert test_typing.revealed_types(tmp_path) == [
        "kubehatch._decorators.WorkflowDef[snippet.In]",
        "kubehatch._decorators.Step[snippet.Out]",
        "snippet.Out",
        "int",
        "snippet.In",
        "kubehatch._decorators.WorkflowDef[Any]",
    ]


def _readme_block(after: str) -> str:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_readmes_two_styles_render_the_same_and_run_the_same() -> None:
    workers = []
    for heading in ("Builder style:", "Decorator style:"):
        namespace: dict[str, Any] = {"__name__": "readme"}
        exec(compile(_readme_block(heading), f"README {heading}", "exec"), namespace)
        workers.append(namespace["worker"])
    builder, decorated = workers
    assert _manifests(decorated) == _manifests(builder)
    (manifest,) = _manifests(builder)
    assert manifest["spec"]["inputSchema"]["required"] == ["name"]
    for worker in workers:
        outputs = run_workflow(worker, "welcome", {"name": "ada"}).outputs
        assert outputs == {"greet": {"text": "hello ada"}, "send": {"sent": "hello ada"}}
