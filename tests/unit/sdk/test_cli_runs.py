"""The run-facing CLI: argument parsing, input errors, and what describe prints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubehatch.api.workflowrun import WorkflowRun
from kubehatch.cli import build_parser
from kubehatch.cli._common import json_object, span
from kubehatch.cli.describe import describe
from kubehatch.errors import KubehatchError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EVENT = {"type": "Event", "source": "user:created"}
BOOM = "failed: ValueError: boom\ntrace"


def test_subcommands_are_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["run", "wf", "--input", '{"a": 1}', "--wait", "-n", "ns"])
    assert (args.workflow, args.wait, args.namespace) == ("wf", True, "ns")
    assert parser.parse_args(["describe", "r1"]).run == "r1"
    assert parser.parse_args(["logs", "r1", "step-one"]).step == "step-one"
    assert parser.parse_args(["cancel", "r1"]).run == "r1"
    assert parser.parse_args(["get", "runs", "wf"]).workflow == "wf"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"x"', "must be a JSON object"),
    ],
)
def test_bad_input_says_how_to_write_it(text: str, message: str) -> None:
    with pytest.raises(KubehatchError, match=message):
        json_object(text, "--input")


def test_json_object_accepts_objects() -> None:
    assert json_object('{"user": {"id": 1}}', "--input") == {"user": {"id": 1}}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (61, "1m1s"), (600, "10m"), (3600, "1h"), (3725, "1h2m")],
)
def test_span(seconds: int, text: str) -> None:
    assert span(timedelta(seconds=seconds)) == text


def test_describe_shows_the_dag_with_states_and_messages() -> None:
    spec = {
        "image": "i:1", "service": "s",
        "steps": [{"name": "a", "action": "a"}, {"name": "b", "action": "b", "parents": ["a"]},
                  {"name": "c", "action": "c", "parents": ["b"]}],
        "onFailure": {"name": "cleanup", "action": "cleanup"},
    }  # fmt: skip
    run = WorkflowRun.model_validate(
        {
            "metadata": {"name": "r1"},
            "spec": {"workflowRef": {"name": "wf"}, "triggeredBy": EVENT},
            "status": {
                "phase": "Failed", "progress": "1/3", "startedAt": T0.isoformat(),
                "finishedAt": (T0 + timedelta(seconds=42)).isoformat(), "workflowSpec": spec,
                "conditions": [{"type": "Succeeded", "status": "False", "reason": "StepFailed",
                                "message": "step b failed: ValueError: boom"}],
                "steps": {
                    "a": {"phase": "Succeeded", "attempts": 1, "startedAt": T0.isoformat(),
                          "finishedAt": (T0 + timedelta(seconds=3)).isoformat()},
                    "b": {"phase": "Failed", "attempts": 3, "message": BOOM},
                    "c": {"phase": "Skipped", "message": "not started"},
                    "cleanup": {"phase": "Succeeded", "attempts": 1},
                },
            },
        }
    )  # fmt: skip
    text = describe(run)
    assert "Trigger:    Event (user:created)" in text
    assert "Phase:      Failed   progress 1/3" in text
    assert "(42s)" in text
    lines = text.splitlines()
    steps = {
        line.split()[1]: line for line in lines if line.startswith("  ") and len(line.split()) > 2
    }
    a, b, c = steps["a"], steps["b"], steps["c"]
    assert "✔" in a and "3s" in a
    assert "✘" in b and "attempts 3" in b and "← a" in b
    assert "← b" in c
    assert "      failed: ValueError: boom" in lines
    assert "✔" in steps["cleanup"] and "(on failure)" in steps["cleanup"]
    assert lines[-1] == steps["cleanup"]


def test_run_takes_a_priority_and_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubehatch.cli import run as run_cli

    made: list[dict] = []

    class FakeClient:
        def run(self, workflow: str, input: dict, **options: object) -> str:
            made.append({"workflow": workflow, "input": input, **options})
            return "wf-abc12"

    monkeypatch.setattr(run_cli, "client", lambda _args: FakeClient())
    parser = build_parser()
    argv = ["run", "wf", "--priority", "3", "--metadata", "tier=premium", "--metadata", "a=b"]
    args = parser.parse_args(argv)
    assert run_cli.run(args) == 0
    assert made == [
        {
            "workflow": "wf",
            "input": {},
            "name": None,
            "priority": 3,
            "additional_metadata": {"tier": "premium", "a": "b"},
        }
    ]
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "wf", "--priority", "4"])
    with pytest.raises(KubehatchError, match="--metadata 'tier': write KEY=VALUE"):
        run_cli.run(parser.parse_args(["run", "wf", "--metadata", "tier"]))
