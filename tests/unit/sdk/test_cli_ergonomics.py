"""The CLI's ergonomics: --version, completion, get -A/-l, input checks, run --local."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import kubehatch
from kubehatch.api.inputschema import input_schema_of
from kubehatch.cli import _version as version_cli
from kubehatch.cli import build_parser, main
from kubehatch.cli.completion import bash_script, levels
from tests.unit.sdk.test_client_errors import FakeCluster, cluster, run_body
from tests.unit.sdk.test_inputschema import Signup

__all__ = ["cluster"]  # the fixture, shared

BAD = {"username": "ada", "age": "x", "address": {"city": "L"}}


def test_the_package_has_a_version() -> None:
    from importlib.metadata import version

    assert kubehatch.__version__ == version("kubehatch")


def _deployment(namespace: str, labels: dict[str, str], image: str) -> SimpleNamespace:
    container = SimpleNamespace(image=image)
    spec = SimpleNamespace(template=SimpleNamespace(spec=SimpleNamespace(containers=[container])))
    meta = SimpleNamespace(name="kubehatch", namespace=namespace, labels=labels)
    return SimpleNamespace(metadata=meta, spec=spec)


def test_version_prints_the_sdks_and_the_operators(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(version_cli, "operator_versions", lambda: ["operator 0.1.0 (x)"])
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"kubehatch {kubehatch.__version__} (SDK and CLI")
    assert out[1] == "operator 0.1.0 (x)"


def test_the_operator_line_comes_from_the_charts_labels() -> None:
    labelled = _deployment("kubehatch", {version_cli.VERSION_LABEL: "0.1.0"}, "reg/op:0.1.0-abc")
    unlabelled = _deployment("ops", {}, "reg/op:0.2.0")
    assert version_cli.operator_lines([labelled, unlabelled]) == [
        "operator 0.1.0 (kubehatch/kubehatch, image reg/op:0.1.0-abc)",
        "operator 0.2.0 (ops/kubehatch, image reg/op:0.2.0)",
    ]


def test_an_unreachable_operator_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.setattr("kubehatch.client._load_config", _no_config)
    (line,) = version_cli.operator_versions()
    assert line.startswith("operator: not reachable (")


def _no_config() -> Any:
    from kubehatch.errors import KubehatchError

    raise KubehatchError("no cluster to talk to; set KUBECONFIG")


def test_completion_covers_every_subcommand_and_option() -> None:
    parser = build_parser()
    table = levels(parser)
    assert "run" in table[""] and "--version" in table[""]
    assert {"--local", "--worker", "--input"} <= set(table["run"])
    assert {"-A", "--all-namespaces", "-l", "--selector", "runs"} <= set(table["get"])
    assert "--data" in table["event push"] and {"bash", "zsh"} <= set(table["completion"])
    script = bash_script(parser)
    assert script.rstrip().endswith("complete -F _kubehatch kubehatch")


def _complete(script: str, *words: str) -> list[str]:
    line = " ".join(words)
    program = (
        f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _kubehatch; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_the_bash_script_completes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert _complete(script, "kubehatch", "ev") == ["event"]
    assert "--all-namespaces" in _complete(script, "kubehatch", "get", "--")
    assert "--data" in _complete(script, "kubehatch", "event", "push", "--")
    # A workflow named like a subcommand is not taken for one.
    assert "--local" in _complete(script, "kubehatch", "run", "event", "--")
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out.startswith("autoload -U +X bashcompinit")


def test_get_runs_of_all_namespaces_and_by_selector(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubernetes.client import CustomObjectsApi

    asked: dict[str, Any] = {}

    def everywhere(self: Any, group: str, version: str, plural: str, **kw: Any) -> Any:
        asked.update(plural=plural, **kw)
        other = run_body("r2", "Running")
        other["metadata"]["namespace"] = "other"
        return {"items": [run_body("r1", "Succeeded"), other]}

    monkeypatch.setattr(CustomObjectsApi, "list_cluster_custom_object", everywhere)
    assert main(["get", "runs", "-A", "-l", "team=data"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert {tuple(line.split()[:2]) for line in lines[1:]} == {("team", "r1"), ("other", "r2")}
    assert asked == {"plural": "workflowruns", "label_selector": "team=data"}
    cluster.objects["workflowruns", "r1"] = run_body("r1", "Succeeded")
    assert main(["get", "runs", "-l", "team=data"]) == 0
    assert "NAMESPACE" not in capsys.readouterr().out


def test_run_schedule_and_event_refuse_a_bad_input_with_field_paths(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = input_schema_of(Signup)
    cluster.objects["workflows", "wf"] = {
        "metadata": {"name": "wf"},
        "spec": {"inputSchema": schema, "triggers": {"events": ["user:created"]}},
    }
    for argv in (
        ["run", "wf", "--input", json.dumps(BAD)],
        ["schedule", "wf", "--at", "+1h", "--input", json.dumps(BAD)],
        ["event", "push", "user:created", "--data", json.dumps(BAD)],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert "address.zip: field required; age: 'x' is not of type 'integer'" in err, err
    assert cluster.writes() == []


WORKER_MODULE = """
from kubehatch import Backoff, Context, Worker

worker = Worker("local", image="img:1")
wf = worker.workflow("hello")
tries = []

@wf.step(name="one")
def one(ctx: Context) -> dict:
    return {"name": ctx.workflow_input()["name"]}

@wf.step(name="two", parents=[one], retries=1, backoff=Backoff(initial="0s"))
def two(ctx: Context) -> dict:
    tries.append(1)
    if len(tries) == 1:
        raise RuntimeError("first try fails")
    return {"greeting": "hello " + ctx.step_output(one)["name"]}
"""


def test_run_local_runs_the_workflow_here_and_prints_each_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "localworker.py").write_text(WORKER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["run", "hello", "--local", "-w", "localworker:worker", "--input", '{"name": "ada"}']
    assert main(argv) == 0
    *steps, last = capsys.readouterr().out.splitlines()
    lines = [line.split(None, 1)[1] for line in steps] + [last]
    assert lines == [
        "one                      Running",
        'one                      Succeeded  {"name": "ada"}',
        "two                      Running",
        "two                      Retrying: RuntimeError: first try fails; next in 0:00:00",
        "two                      Running (attempt 2)",
        'two                      Succeeded (attempt 2)  {"greeting": "hello ada"}',
        "local run of hello Succeeded (2/2 steps succeeded)",
    ]
    assert main(["run", "nope", "--local", "-w", "localworker:worker"]) == 1
    assert "has no workflow 'nope' (workflows: hello)" in capsys.readouterr().err
    monkeypatch.delenv("KUBEHATCH_WORKER", raising=False)
    assert main(["run", "hello", "--local"]) == 1
    assert "--local needs the worker" in capsys.readouterr().err
