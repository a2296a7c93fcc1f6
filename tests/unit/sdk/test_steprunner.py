"""The step entrypoint: environment, context from mounted files, outputs, failures."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from kubehatch import _steprunner as steprunner
from kubehatch._steprunner import (
    MAX_MESSAGE_BYTES,
    MAX_OUTPUT_BYTES,
    build_context,
    encode_output,
    failure_message,
)
from kubehatch.api import stepenv
from kubehatch.api.stepenv import StepEnv
from kubehatch.api.wire import EXIT_FAILED, EXIT_PERMANENT, EXIT_SELF_CANCELLED
from kubehatch.errors import KubehatchError, PermanentError
from tests.unit.sdk.test_incluster import FORBIDDEN, FakeApi, api, plain_http

__all__ = ["api"]  # the fixture, shared

STORE_OUTPUT = steprunner.store_output
"""The real one: the ``pod`` fixture replaces it with a capture."""

WORKER = """
from kubehatch import Context, Fn, PermanentError, Worker, WorkflowJob

def greet(ctx: Context) -> dict:
    return {"hi": ctx.workflow_input()["name"], "parent": ctx.step_output("first")}

def broken(ctx: Context) -> None:
    raise ValueError("no such user")

def hopeless(ctx: Context) -> None:
    raise PermanentError("input can never work")

def huge(ctx: Context) -> str:
    return "x" * (11 * 1024 * 1024)

def quits(ctx: Context) -> None:
    ctx.cancel()
    ctx.raise_if_cancelled()

def stops(ctx: Context) -> dict:
    ctx.cancel()
    return {"not": "stored"}

worker = Worker("w", image="i:1")
for f in (greet, broken, hopeless, huge, quits, stops):
    worker.register_workflow(WorkflowJob(name=f.__name__, steps=[Fn(f).set_name(f.__name__)]))
"""


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the operator mounts and sets, with the API write captured."""
    (tmp_path / "stepworker.py").write_text(WORKER)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "input.json").write_text('{"name": "ada"}')
    (tmp_path / "parents").mkdir()
    (tmp_path / "parents" / "first.json").write_text('{"n": 1}')
    stored: dict[str, Any] = {"log": tmp_path / "termination-log"}
    monkeypatch.setattr(steprunner, "TERMINATION_LOG", stored["log"])
    monkeypatch.setattr(
        steprunner, "store_output", lambda step, text, **_: stored.update(text=text)
    )
    stored["env"] = {
        "KUBEHATCH_RUN": "r1",
        "KUBEHATCH_STEP": "greet",
        "KUBEHATCH_ACTION": "greet:greet",
        "KUBEHATCH_WORKER": "stepworker:worker",
        "KUBEHATCH_PARENTS": "first",
        "KUBEHATCH_ATTEMPT": "2",
        "KUBEHATCH_INPUT_DIR": str(tmp_path / "input"),
        "KUBEHATCH_PARENTS_DIR": str(tmp_path / "parents"),
        "KUBEHATCH_OUTPUT_CONFIGMAP": "r1-greet-2-output",
    }
    return stored


def test_a_step_runs_with_its_input_and_parents_and_hands_back_json(pod: dict[str, Any]) -> None:
    assert steprunner.main(pod["env"]) == 0
    assert json.loads(pod["text"]) == {"hi": "ada", "parent": {"n": 1}}


@pytest.mark.parametrize(
    ("action", "code", "text"),
    [
        ("broken:broken", EXIT_FAILED, "ValueError: no such user"),
        ("hopeless:hopeless", EXIT_PERMANENT, "PermanentError: input can never work"),
        ("huge:huge", EXIT_PERMANENT, "more than a step may return (10485760 bytes"),
        ("quits:quits", EXIT_SELF_CANCELLED, "cancelled by the step itself (ctx.cancel())"),
        ("stops:stops", EXIT_SELF_CANCELLED, "cancelled by the step itself (ctx.cancel())"),
    ],
)
def test_failures_reach_the_termination_message(
    pod: dict[str, Any], action: str, code: int, text: str
) -> None:
    env = {**pod["env"], "KUBEHATCH_ACTION": action, "KUBEHATCH_PARENTS": ""}
    assert steprunner.main(env) == code
    assert text in pod["log"].read_text()
    assert "text" not in pod  # nothing was stored


@pytest.mark.parametrize(
    ("workflow", "code", "text"),
    [
        ('WorkflowJob(name="slow", steps=[Fn(broken).set_timeout("5 min")])', 0, None),
        ('WorkflowJob(name="Bad Name", steps=[Fn(broken)])', EXIT_FAILED, "'Bad Name' is not"),
    ],
)
def test_a_pod_refuses_a_broken_registration_and_leaves_specs_to_render(
    pod: dict[str, Any], tmp_path: Path, workflow: str, code: int, text: str | None
) -> None:
    """The pod does not validate specs (kubehatch render and the API server did)."""
    module = f"registered{code}"  # a module of its own per case: imported modules stay imported
    (tmp_path / f"{module}.py").write_text(f"{WORKER}\nworker.register_workflow({workflow})\n")
    env = {**pod["env"], "KUBEHATCH_WORKER": f"{module}:worker"}
    assert steprunner.main(env) == code
    if text is None:
        assert json.loads(pod["text"]) == {"hi": "ada", "parent": {"n": 1}}
    else:
        assert "RegistrationError: 1 registration problem" in pod["log"].read_text()
        assert text in pod["log"].read_text()


def test_missing_environment_names_the_variables() -> None:
    with pytest.raises(KubehatchError, match="KUBEHATCH_WORKER"):
        StepEnv.from_env({"KUBEHATCH_RUN": "r", "KUBEHATCH_STEP": "s", "KUBEHATCH_ACTION": "a"})


def test_context_carries_names_retry_count_and_missing_parents(tmp_path: Path) -> None:
    env = StepEnv.from_env(
        {
            "KUBEHATCH_RUN": "r1",
            "KUBEHATCH_STEP": "s",
            "KUBEHATCH_ACTION": "a:s",
            "KUBEHATCH_WORKER": "m:w",
            "KUBEHATCH_WORKFLOW": "wf",
            "KUBEHATCH_ATTEMPT": "3",
            "KUBEHATCH_PARENTS": "gone",
            "KUBEHATCH_INPUT_DIR": str(tmp_path),
            "KUBEHATCH_PARENTS_DIR": str(tmp_path),
            "KUBEHATCH_FAILURES": '{"step1": "failed: ValueError: step1 failed"}',
        }
    )
    import threading

    ctx = build_context(env, threading.Event())
    assert (ctx.run_name, ctx.workflow_name, ctx.step_name, ctx.retry_count) == ("r1", "wf", "s", 2)
    assert ctx.workflow_input() == {}
    assert ctx.step_output("gone") is None
    # An on-failure step reads what failed; middleware's copies keep it.
    errors = {"step1": "failed: ValueError: step1 failed"}
    assert ctx.step_run_errors() == errors
    assert ctx.with_value("k", 1).step_run_errors() == errors


def test_output_limit_is_the_configmap_limit() -> None:
    env = StepEnv.from_env(
        {
            "KUBEHATCH_RUN": "r",
            "KUBEHATCH_STEP": "s",
            "KUBEHATCH_ACTION": "a",
            "KUBEHATCH_WORKER": "m:w",
        }
    )
    assert len(encode_output(env, "x" * (MAX_OUTPUT_BYTES - 2)).encode()) == MAX_OUTPUT_BYTES
    with pytest.raises(PermanentError, match=f"{MAX_OUTPUT_BYTES + 1} bytes"):
        encode_output(env, "x" * (MAX_OUTPUT_BYTES - 1))


def test_failure_messages_fit_the_kubelets_limit() -> None:
    try:
        raise RuntimeError("boom " * 5000)
    except RuntimeError as err:
        message = failure_message(err)
    assert message.startswith("RuntimeError: boom")
    assert len(message.encode()) <= MAX_MESSAGE_BYTES


def test_sys_exit_in_a_step_is_a_failure_not_a_silent_success(
    pod: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "exiting.py").write_text(
        "import sys\nfrom kubehatch import Fn, Worker, WorkflowJob\n"
        "def leave(ctx):\n    sys.exit(0)\n"
        "worker = Worker('x', image='i:1')\n"
        "worker.register_workflow(WorkflowJob(name='leave', steps=[Fn(leave).set_name('leave')]))\n"
    )
    env = {**pod["env"], "KUBEHATCH_WORKER": "exiting:worker", "KUBEHATCH_ACTION": "leave:leave"}
    assert steprunner.main(env) == EXIT_FAILED
    assert "called sys.exit(0)" in pod["log"].read_text()
    assert "text" not in pod


def test_the_output_is_a_configmap_the_pod_creates_in_its_namespace(api: FakeApi) -> None:
    step = StepEnv.from_env(
        {
            "KUBEHATCH_NAMESPACE": "ns",
            "KUBEHATCH_RUN": "r1",
            "KUBEHATCH_RUN_UID": "uid-1",
            "KUBEHATCH_STEP": "s",
            "KUBEHATCH_ACTION": "a:s",
            "KUBEHATCH_WORKER": "m:w",
            "KUBEHATCH_OUTPUT_CONFIGMAP": "r1-s-1-output",
        }
    )
    STORE_OUTPUT(step, '{"a":1}', server=api.server, connect=plain_http)
    [request] = api.requests
    assert request["path"] == "/api/v1/namespaces/ns/configmaps"
    assert json.loads(request["body"]) == stepenv.output_configmap(step, '{"a":1}')


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (409, {"kind": "Status", "reason": "AlreadyExists"}, 0),  # stored by this attempt
        (403, FORBIDDEN, EXIT_FAILED),
    ],
)
def test_the_api_servers_answer_decides_the_exit_and_the_message(
    pod: dict[str, Any],
    api: FakeApi,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    body: dict[str, Any],
    code: int,
) -> None:
    store = partial(STORE_OUTPUT, server=api.server, connect=plain_http)
    monkeypatch.setattr(steprunner, "store_output", store)
    api.reply(status, body)
    assert steprunner.main(pod["env"]) == code
    assert len(api.requests) == 1
    if code:
        assert (
            pod["log"]
            .read_text()
            .startswith(
                "InClusterError: cannot create ConfigMap default/r1-greet-2-output: "
                f"the API server answered 403 Forbidden: {FORBIDDEN['message']}\n"
            )
        )
