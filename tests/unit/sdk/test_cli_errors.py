"""Every failure of the CLI says why in one line, with exit status 1 (2 for usage errors).

The commands run end to end against ``FakeCluster`` (see test_client_errors.py): what
``Client()`` connects to in these tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from kubehatch.cli import logs as logs_cli
from kubehatch.cli import main
from kubehatch.cli import trigger as trigger_cli
from kubehatch.client import MAX_INPUT_BYTES
from tests.unit.sdk.test_client_errors import (
    CUSTOM,
    HOST,
    FakeCluster,
    cluster,
    pod_body,
    run_body,
    status,
)

__all__ = ["cluster"]  # the fixture, shared

COMMANDS = {
    "describe": ["describe", "r1"],
    "wait": ["wait", "r1"],
    "cancel": ["cancel", "r1"],
    "get": ["get", "runs"],
    "logs": ["logs", "r1"],
    "run": ["run", "wf"],
    "schedule": ["schedule", "wf", "--at", "+1h"],
    "event": ["event", "push", "user:created"],
}


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command; it must fail with status 1 and one line, no traceback."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unreachable_cluster_is_one_line(
    command: str, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.reachable = False
    assert fails(COMMANDS[command], capsys) == (
        f"kubehatch {command}: cannot reach the cluster at {HOST}: Failed to establish a new "
        "connection: [Errno 111] Connection refused; check KUBECONFIG"
    )


@pytest.mark.parametrize(
    ("command", "verb", "resource"),
    [
        ("describe", "get", "workflowruns"),
        ("wait", "get", "workflowruns"),
        ("cancel", "patch", "workflowruns"),
        ("get", "list", "workflowruns"),
        ("logs", "list", "pods"),
        ("run", "create", "workflowruns"),
        ("schedule", "create", "workflowruns"),
        ("event", "create", "workflowevents"),
    ],
)
def test_forbidden_is_one_line_with_the_check_to_run(
    command: str, verb: str, resource: str, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.forbidden |= {("get", "workflows"), (verb, resource)}  # and Workflows are hidden
    assert fails(COMMANDS[command], capsys) == (
        f"kubehatch {command}: forbidden: you may not {verb} {resource} in namespace 'team' "
        f"(kubectl auth can-i {verb} {resource} -n team)"
    )


@pytest.mark.parametrize("command", ["describe", "wait", "cancel", "get", "run", "event"])
def test_no_crds_is_one_line_saying_to_install_the_chart(
    command: str, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.crds = False
    assert fails(COMMANDS[command], capsys).startswith(
        f"kubehatch {command}: the cluster has no kubehatch CRDs: install the chart"
    )


@pytest.mark.parametrize("command", ["describe", "wait", "cancel", "logs"])
def test_a_missing_run_is_one_line(
    command: str, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fails(COMMANDS[command], capsys) == (
        f"kubehatch {command}: workflowrun 'r1' not found in namespace 'team'; "
        "kubectl get workflowruns -n team lists them"
    )


def test_a_run_scheduled_for_later_may_come_before_its_workflow(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(COMMANDS["schedule"]) == 0
    assert [w[0] for w in cluster.writes()] == ["POST"]


@pytest.mark.parametrize("command", ["run"])
def test_a_missing_workflow_is_one_line_and_nothing_is_created(
    command: str, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fails(COMMANDS[command], capsys) == (
        f"kubehatch {command}: workflow 'wf' does not exist in namespace 'team'; "
        "kubectl get workflows -n team lists them"
    )
    assert cluster.writes() == []


def test_run_creates_the_run_when_workflows_cannot_be_read(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.forbidden.add(("get", "workflows"))
    assert main(["run", "wf", "--name", "r1"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("workflowrun/r1 created\n", "")
    assert cluster.writes() == [("POST", f"{CUSTOM}team/workflowruns")]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "wf", "--input"],
        ["schedule", "wf", "--at", "+1h", "--input"],
        ["event", "push", "user:created", "--data"],
    ],
)
def test_an_input_over_the_limit_is_refused_before_anything_is_created(
    argv: list[str], cluster: FakeCluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cluster.objects["workflows", "wf"] = {"metadata": {"name": "wf"}}
    big = tmp_path / "input.json"
    big.write_text(json.dumps({"blob": "x" * MAX_INPUT_BYTES}))
    line = fails([*argv, f"@{big}"], capsys)
    size = big.stat().st_size
    assert f"is {size} bytes of JSON" in line
    assert f"over the limit of {MAX_INPUT_BYTES} bytes" in line
    assert line.endswith("pass a reference to the data instead: an object-storage URL, a PVC path")
    assert cluster.requests == []


def test_an_invalid_event_is_one_line(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fails(["event", "push", "has space"], capsys).startswith(
        "kubehatch event: event 'has space' is invalid: spec.key: "
    )
    assert cluster.requests == []


# --- logs ---------------------------------------------------------------------------------


def test_logs_show_each_attempt_and_why_a_pod_has_not_started(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    backoff = ("ImagePullBackOff", 'Back-off pulling image "registry.invalid/app:1"')
    cluster.pods = {
        "r1-a-1-x": pod_body("r1-a-1-x", "a", "Failed", created="2026-01-01T00:00:01Z"),
        "r1-a-2-x": pod_body("r1-a-2-x", "a", "Succeeded", created="2026-01-01T00:00:02Z"),
        "r1-b-1-x": pod_body("r1-b-1-x", "b", "Pending", waiting=backoff,
                             created="2026-01-01T00:00:03Z"),
        "r1-c-1-x": pod_body("r1-c-1-x", "c", "Running", created="2026-01-01T00:00:04Z"),
    }  # fmt: skip
    cluster.logs = {"r1-a-1-x": "boom\n", "r1-a-2-x": "one\ntwo\n"}
    assert main(["logs", "r1"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out == (
        "==> r1-a-1 (Failed) <==\nboom\n"
        "==> r1-a-2 (Succeeded) <==\none\ntwo\n"
        "==> r1-b-1 (Pending) <==\n"
        'not started: ImagePullBackOff: Back-off pulling image "registry.invalid/app:1"\n'
        "==> r1-c-1 (Running) <==\n(no output yet)\n"
    )
    assert main(["logs", "r1", "b"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "==> r1-b-1 (Pending) <=="


@pytest.mark.parametrize(
    ("step", "run", "expected"),
    [
        (None, run_body("r1"), "run 'r1' has no pods yet: the operator has not picked the run up"),
        (None, run_body("r1", "Queued"), "run 'r1' has no pods yet: the run is Queued"),
        (None, run_body("r1", "Succeeded"),
         "run 'r1' has no pods left: the run is Succeeded and they were deleted"),
        ("b", run_body("r1", "Failed", steps={"b": {"phase": "Skipped"}}),
         "step 'b' of run 'r1' has no pods: the step is Skipped"),
        ("zz", run_body("r1", "Running", workflowSpec={
            "image": "i:1", "steps": [{"name": "a", "action": "s:a"}, {"name": "b",
                                                                        "action": "s:b"}]}),
         "run 'r1' has no step 'zz' (its steps: a, b)"),
    ],
)  # fmt: skip
def test_logs_of_a_run_without_pods_say_why(
    step: str | None,
    run: dict[str, object],
    expected: str,
    cluster: FakeCluster,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster.objects["workflowruns", "r1"] = run
    assert main(["logs", "r1", *([step] if step else [])]) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_logs_without_pods_when_runs_cannot_be_read(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.forbidden.add(("get", "workflowruns"))
    assert main(["logs", "r1"]) == 0
    assert capsys.readouterr().out == "run 'r1' has no pods (yet, or they were cleaned up)\n"


# --- unexpected errors, --debug, Ctrl-C, usage -------------------------------------------------


def _broken(error: BaseException) -> object:
    def run(args: argparse.Namespace) -> int:
        raise error

    return run


def test_an_unexpected_error_is_one_line_pointing_at_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logs_cli, "run", _broken(ValueError("bad value\nmore")))
    assert fails(["logs", "r1"], capsys) == (
        "kubehatch logs: unexpected error: ValueError: bad value "
        "(run with --debug for the traceback)"
    )


@pytest.mark.parametrize("argv", [["--debug", "logs", "r1"], ["logs", "r1", "--debug"]])
def test_debug_prints_the_traceback(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logs_cli, "run", _broken(ValueError("bad value")))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.rstrip().endswith("ValueError: bad value")


def test_debug_is_accepted_after_nested_subcommands(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.reachable = False
    assert main(["event", "push", "k", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("kubehatch event: cannot reach the cluster")


def test_debug_is_off_by_default() -> None:
    from kubehatch.cli import build_parser

    assert build_parser().parse_args(["logs", "r1"]).debug is False


def test_pod_side_commands_keep_their_tracebacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kubehatch trigger` runs in a CronJob's pod: nobody can rerun it with --debug."""
    monkeypatch.setattr(trigger_cli, "run", _broken(RuntimeError("in the pod")))
    assert main(["trigger", "--workflow", "w", "--schedule", "* * * * *", "--run-prefix", "p"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_exits_130_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logs_cli, "run", _broken(KeyboardInterrupt()))
    assert main(["logs", "r1"]) == 130
    assert capsys.readouterr().err == "kubehatch logs: interrupted\n"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["describe"])
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_the_cron_trigger_explains_api_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from kubehatch.errors import KubehatchError

    class Refusing:
        api_client = client.ApiClient(client.Configuration(host=HOST))

        def create_namespaced_custom_object(self, *args: object) -> None:
            code, body = status(403, "Forbidden", "no")
            raise ApiException(status=code, reason="Forbidden", body=json.dumps(body))

    monkeypatch.setattr(config, "load_incluster_config", lambda: None)
    monkeypatch.setattr(client, "CustomObjectsApi", Refusing)
    body = {"metadata": {"name": "p-20260101-0000", "namespace": "team"}}
    with pytest.raises(KubehatchError) as err:
        trigger_cli.create_run(body)
    assert str(err.value) == (
        "forbidden: you may not create workflowruns in namespace 'team' "
        "(kubectl auth can-i create workflowruns -n team)"
    )
