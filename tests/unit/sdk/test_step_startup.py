"""`kubehatch step` starts cheaply: no parser, no other subcommand, no kubernetes client.

Hundreds of step pods may start at once on a small node; what the step process imports
before the user's code runs is paid in each of them. The path skipping the parser must
behave as the parser's would.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubehatch import cli
from kubehatch.api import wire
from kubehatch.cli import step as step_cli
from kubehatch.errors import KubehatchError
from tests.unit.sdk.test_incluster import FakeApi, api

__all__ = ["api"]  # the fixture, shared

WORKER = """
from kubehatch import Context, Fn, Worker, WorkflowJob

def hello(ctx: Context) -> dict:
    return {"hello": ctx.workflow_input().get("name")}

worker = Worker("w", image="i:1")
worker.register_workflow(WorkflowJob(name="hello", steps=[Fn(hello)]))
"""

# Every builder of the SDK, none of the API models: what the step pod needs of it is the
# function behind its action.
BUILDERS_WORKER = """
from datetime import UTC, datetime

from kubehatch import (
    At, Concurrency, Context, Cron, Crons, Event, Events, Fn, Next, Worker, WorkflowJob,
)

def log(ctx: Context, next: Next) -> dict:
    return next(ctx.with_value("seen", True))

def hello(ctx: Context) -> dict:
    return {"hello": ctx.workflow_input().get("name")}

def user_of(ctx: Context) -> str:
    return "u"

first = Fn(hello).set_timeout("30s").set_retries(2).set_resources(limits={"memory": "64Mi"})

def send(ctx: Context) -> dict:
    return {"parent": ctx.step_output(first), "seen": ctx.value("seen")}

worker = Worker("w", image="i:1").use(log)
mail = worker.new_service("mail")
mail.register_action(send, name="send")
worker.register_workflow(
    WorkflowJob(
        name="hello",
        on=[Event("user:created"), Events("a:b"), Cron("*/5 * * * *"), Crons("@hourly")],
        timeout="1h",
        concurrency=Concurrency.expression("input.user").max_runs(2),
        steps=[first, worker.call("mail:send").add_parents(first).add_env("MODE", "x")],
    )
)
worker.register_workflow(
    WorkflowJob(
        name="once",
        on=At(datetime(2030, 1, 1, tzinfo=UTC)),
        concurrency=Concurrency(user_of).limit_strategy("QueueNewest"),
        steps=[Fn(hello)],
    )
)
"""

# A worker whose own code uses the API models and pydantic: they load, the compiler does not.
MODELS_WORKER = """
from pydantic import BaseModel

from kubehatch import Backoff, Concurrency, Context, Fn, LimitStrategy, Worker, WorkflowJob

class Hello(BaseModel):
    hello: str

def hello(ctx: Context) -> Hello:
    return Hello(hello=ctx.workflow_input()["name"])

worker = Worker("w", image="i:1")
limit = Concurrency.expression("input.name").limit_strategy(LimitStrategy.QUEUE_NEWEST)
step = Fn(hello).set_retries(2, backoff=Backoff(initial="1s"))
worker.register_workflow(WorkflowJob(name="hello", steps=[step], concurrency=limit))
"""

# A step pod's process, with the API server and the termination log swapped for the test's.
POD = """
import functools, gc, json, socket, sys
from pathlib import Path
from kubehatch import _incluster, _steprunner

_steprunner.TERMINATION_LOG = Path(sys.argv[1])
_steprunner.store_output = functools.partial(
    _steprunner.store_output,
    server=_incluster.Server("127.0.0.1", int(sys.argv[2]), "tok", None),
    connect=lambda host, port, context, timeout: socket.create_connection((host, port), timeout),
)
from kubehatch.cli import main

code = main(["step"])
ended = {"modules": sorted(sys.modules), "frozen": gc.get_freeze_count(), "gc": gc.isenabled()}
print(json.dumps(ended))
sys.exit(code)
"""

# Never in a step pod's process (unless the user's code imports them).
HEAVY = ["kubernetes", "urllib3", "requests", "yaml", "argparse", "pkgutil", "kubehatch.client"]
# Loaded only for what needs them: asyncio for a chain with something async, traceback for a
# failure, random for a retry, the decorator API for workers using it; http.client (and the
# email package under it) never: see kubehatch._http1.
LAZY = ["asyncio", "http", "email", "traceback", "random", "kubehatch._decorators"]
# What validating a workflow's spec loads: render's business, never a step pod's.
COMPILING = ["kubehatch._compiler", "kubehatch.api.fields", "croniter", "celpy"]
# The API models, and pydantic itself: loaded only by a worker whose own code uses them.
MODELS = ["kubehatch.api.workflow", "kubehatch.api.common", "pydantic", "pydantic_core"]


@dataclass(frozen=True)
class Pod:
    """What a step pod's process ended with."""

    modules: set[str]
    frozen: int
    """Objects frozen out of the cyclic GC (``gc.get_freeze_count()``)."""
    gc: bool
    """Whether the cyclic GC was enabled."""


def run_pod(
    api: FakeApi, tmp_path: Path, worker: str, action: str, parents: dict[str, Any] | None = None
) -> Pod:
    """Run one step attempt of ``worker`` (source) in a process of its own, as a pod does.

    Returns what the process ended with, after checking that the step succeeded.
    """
    (tmp_path / "podworker.py").write_text(worker)
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "input.json").write_text('{"name": "ada"}')
    (tmp_path / "parents").mkdir()
    for name, output in (parents or {}).items():
        (tmp_path / "parents" / f"{name}.json").write_text(json.dumps(output))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "KUBEHATCH_RUN": "r1",
        "KUBEHATCH_STEP": "hello",
        "KUBEHATCH_ACTION": action,
        "KUBEHATCH_WORKER": "podworker:worker",
        "KUBEHATCH_PARENTS": ",".join(parents or {}),
        "KUBEHATCH_INPUT_DIR": str(tmp_path / "input"),
        "KUBEHATCH_PARENTS_DIR": str(tmp_path / "parents"),
        "KUBEHATCH_OUTPUT_CONFIGMAP": "r1-hello-1-output",
    }
    result = subprocess.run(
        [sys.executable, "-c", POD, str(tmp_path / "termination-log"), str(api.port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "step hello succeeded" in result.stderr
    ended = json.loads(result.stdout.splitlines()[-1])
    return Pod(set(ended["modules"]), ended["frozen"], ended["gc"])


def loaded(modules: set[str], names: list[str]) -> list[str]:
    """The modules of ``modules`` that are one of ``names`` or inside one."""
    return sorted(m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names))


def test_a_step_pod_imports_no_parser_no_other_subcommand_and_no_client(
    api: FakeApi, tmp_path: Path
) -> None:
    modules = run_pod(api, tmp_path, WORKER, "hello:hello").modules
    [request] = api.requests
    assert json.loads(request["body"])["data"] == {"output.json": '{"hello":"ada"}'}
    assert loaded(modules, [*HEAVY, *LAZY]) == []
    assert sorted(m for m in modules if m.startswith("kubehatch.cli.")) == ["kubehatch.cli.step"]


def test_an_async_step_loads_asyncio_and_runs_on_its_event_loop(
    api: FakeApi, tmp_path: Path
) -> None:
    worker = WORKER.replace("def hello(", "async def hello(")
    modules = run_pod(api, tmp_path, worker, "hello:hello").modules
    [request] = api.requests
    assert json.loads(request["body"])["data"] == {"output.json": '{"hello":"ada"}'}
    assert "asyncio" in modules
    assert loaded(modules, [*HEAVY, "http", "email"]) == []


def test_the_sdks_start_up_objects_are_frozen_out_of_the_gc_which_stays_on(
    api: FakeApi, tmp_path: Path
) -> None:
    """Full collections, the one at exit too, need not walk the SDK's modules and classes."""
    pod = run_pod(api, tmp_path, WORKER, "hello:hello")
    assert pod.frozen > 1000 and pod.gc


def test_a_step_pod_validates_no_spec_and_loads_no_api_model_nor_pydantic(
    api: FakeApi, tmp_path: Path
) -> None:
    """Registering every kind of trigger, limit and option, then running a step, needs none.

    Validating specs is ``kubehatch render``'s (and the API server's): see
    ``Worker.resolve_action``.
    """
    modules = run_pod(
        api, tmp_path, BUILDERS_WORKER, "mail:send", {"hello": {"hello": "ada"}}
    ).modules
    [request] = api.requests
    output = json.loads(json.loads(request["body"])["data"]["output.json"])
    assert output == {"parent": {"hello": "ada"}, "seen": True}
    assert loaded(modules, [*HEAVY, *COMPILING, *MODELS]) == []


def test_a_worker_using_the_models_loads_them_but_still_not_the_compiler(
    api: FakeApi, tmp_path: Path
) -> None:
    modules = run_pod(api, tmp_path, MODELS_WORKER, "hello:hello").modules
    [request] = api.requests
    assert json.loads(request["body"])["data"] == {"output.json": '{"hello":"ada"}'}
    assert "kubehatch.api.workflow" in modules  # Backoff and LimitStrategy are API types
    assert loaded(modules, ["kubehatch._compiler", "celpy"]) == []


def test_the_shortcut_is_the_step_pods_command() -> None:
    assert wire.STEP_COMMAND == ("kubehatch", cli.STEP)
    assert step_cli.NAME == cli.STEP


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """``kubehatch step`` freezes what is loaded out of the GC: not pytest's objects, after."""
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
@pytest.mark.parametrize("argv", [["step"], ["step", "--debug"], ["--debug", "step"]])
@pytest.mark.parametrize(
    ("outcome", "code", "stderr"),
    [
        (7, 7, ""),
        (KeyboardInterrupt(), 130, "kubehatch step: interrupted\n"),
        (KubehatchError("no worker"), 1, "kubehatch step: no worker\n"),
        (RuntimeError("bug"), 1, "RuntimeError: bug\n"),  # a traceback: TRACEBACKS
    ],
)
def test_with_or_without_the_parser_a_step_ends_alike(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    outcome: int | BaseException,
    code: int,
    stderr: str,
) -> None:
    def step_main() -> int:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr("kubehatch._steprunner.main", step_main)
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    debug = "--debug" in argv and isinstance(outcome, KubehatchError)
    if debug or isinstance(outcome, RuntimeError):
        assert err.startswith("Traceback") and err.endswith(stderr)
    else:
        assert err == stderr


def test_step_help_still_goes_through_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as leaving:
        cli.main(["step", "--help"])
    assert leaving.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kubehatch step") and step_cli.EPILOG in out
