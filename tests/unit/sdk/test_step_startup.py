"""`kubehatch step` starts cheaply: no parser, no other subcommand, no kubernetes client.

Hundreds of step pods may start at once on a small node; what the step process imports
before the user's code runs is paid in each of them. The path skipping the parser must
behave as the parser's would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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

# A step pod's process, with the API server and the termination log swapped for the test's.
POD = """
import functools, http.client, json, sys
from pathlib import Path
from kubehatch import _incluster, _steprunner

_steprunner.TERMINATION_LOG = Path(sys.argv[1])
_steprunner.store_output = functools.partial(
    _steprunner.store_output,
    server=_incluster.Server("127.0.0.1", int(sys.argv[2]), "tok", None),
    connect=lambda host, port, context, timeout: http.client.HTTPConnection(host, port),
)
from kubehatch.cli import main

code = main(["step"])
print(json.dumps(sorted(sys.modules)))
sys.exit(code)
"""

# Never in a step pod's process (unless the user's code imports them).
HEAVY = ["kubernetes", "urllib3", "requests", "yaml", "argparse", "pkgutil", "kubehatch.client"]


def test_a_step_pod_imports_no_parser_no_other_subcommand_and_no_client(
    api: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / "podworker.py").write_text(WORKER)
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "input.json").write_text('{"name": "ada"}')
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "KUBEHATCH_RUN": "r1",
        "KUBEHATCH_STEP": "hello",
        "KUBEHATCH_ACTION": "hello:hello",
        "KUBEHATCH_WORKER": "podworker:worker",
        "KUBEHATCH_INPUT_DIR": str(tmp_path / "input"),
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
    [request] = api.requests
    assert json.loads(request["body"])["data"] == {"output.json": '{"hello":"ada"}'}
    modules = set(json.loads(result.stdout.splitlines()[-1]))
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY) == []
    assert sorted(m for m in modules if m.startswith("kubehatch.cli.")) == ["kubehatch.cli.step"]


def test_the_shortcut_is_the_step_pods_command() -> None:
    assert wire.STEP_COMMAND == ("kubehatch", cli.STEP)
    assert step_cli.NAME == cli.STEP


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
