"""The trigger subcommands: event push, schedule, and trigger (run by cron pods)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubehatch.api.wire import cron_run_name
from kubehatch.cli import event as event_cli
from kubehatch.cli import main
from kubehatch.cli import schedule as schedule_cli
from kubehatch.cli import trigger as trigger_cli
from kubehatch.cli.trigger import (
    latest_time,
    run_manifest,
    scheduled_time,
    time_from_job_name,
)
from kubehatch.errors import KubehatchError

NOW = datetime(2026, 11, 24, 22, 40, 3, tzinfo=UTC)


class FakeEvents:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.priorities: list[int | None] = []

    def push(
        self, key: str, payload: dict[str, Any], *, metadata: dict[str, str], priority: int | None
    ) -> str:
        self.pushed.append((key, payload, metadata))
        self.priorities.append(priority)
        return "event-x1"


class FakeClient:
    def __init__(self, namespace: str | None) -> None:
        self.namespace = namespace or "default"
        self.event = FakeEvents()
        self.runs: list[dict[str, Any]] = []

    def run(self, workflow: str, input: dict[str, Any], **kwargs: Any) -> str:
        self.runs.append({"workflow": workflow, "input": input, **kwargs})
        return kwargs.get("name") or f"{workflow}-abc12"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[FakeClient]:
    made: list[FakeClient] = []

    def client(args: Any) -> FakeClient:
        made.append(FakeClient(args.namespace))
        return made[-1]

    monkeypatch.setattr(event_cli, "client", client)
    monkeypatch.setattr(schedule_cli, "client", client)
    return made


# --- kubehatch event push -------------------------------------------------------------------


def test_event_push(fake: list[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["event", "push", "user:created", "--data", '{"user": "ada"}', "-m", "source=signup",
         "-n", "users", "--priority", "3"]
    )  # fmt: skip
    assert code == 0
    assert fake[0].event.priorities == [3]
    assert fake[0].namespace == "users"
    assert fake[0].event.pushed == [("user:created", {"user": "ada"}, {"source": "signup"})]
    assert "workflowevent/event-x1 pushed to namespace users" in capsys.readouterr().out


def test_event_push_reads_data_from_a_file(fake: list[FakeClient], tmp_path: Path) -> None:
    data = tmp_path / "payload.json"
    data.write_text('{"n": 1}')
    assert main(["event", "push", "k", "--data", f"@{data}"]) == 0
    assert fake[0].event.pushed == [("k", {"n": 1}, {})]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "{user: ada}"], "--data is not valid JSON"),
        (["--data", "[1, 2]"], "--data must be a JSON object"),
        (["--data", "@/nonexistent/payload.json"], "--data: cannot read"),
        (["-m", "no-equals"], "write KEY=VALUE"),
    ],
)
def test_event_push_bad_input_names_the_option(
    fake: list[FakeClient], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["event", "push", "k", *argv]) == 1
    assert message in capsys.readouterr().err
    assert not fake or not fake[0].event.pushed


# --- kubehatch schedule ---------------------------------------------------------------------


def test_parse_at() -> None:
    assert schedule_cli.parse_at("2026-06-01T12:00:00Z", NOW) == datetime(
        2026, 6, 1, 12, tzinfo=UTC
    )
    assert schedule_cli.parse_at("+90s", NOW) == NOW + timedelta(seconds=90)
    assert schedule_cli.parse_at("in 1h30m", NOW) == NOW + timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-06-01T12:00:00", "has no time zone; add one, e.g. 2026-06-01T12:00:00Z"),
        ("tomorrow", "is not a time: write RFC 3339"),
        ("+5 minutes", "is not a time"),
        ("+5x", "not a duration"),
    ],
)
def test_parse_at_errors_show_the_fix(text: str, message: str) -> None:
    with pytest.raises(KubehatchError, match="--at") as err:
        schedule_cli.parse_at(text, NOW)
    assert message in str(err.value)


def test_schedule_creates_a_run_with_scheduled_at(
    fake: list[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["schedule", "nightly", "--at", "2999-01-01T00:00:00+01:00", "--input", '{"a": 1}']
    assert main([*argv, "--name", "once", "--priority", "2"]) == 0
    (run,) = fake[0].runs
    assert run == {
        "workflow": "nightly",
        "input": {"a": 1},
        "name": "once",
        "scheduled_at": datetime(2998, 12, 31, 23, tzinfo=UTC),
        "priority": 2,
    }
    out = capsys.readouterr()
    assert "workflowrun/once scheduled for 2998-12-31T23:00:00+00:00" in out.out
    assert out.err == ""


def test_schedule_in_the_past_starts_at_once(
    fake: list[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", "nightly", "--at", "2000-01-01T00:00:00Z"]) == 0
    assert "in the past; the run starts at once" in capsys.readouterr().err


# --- kubehatch trigger (cron pods) ----------------------------------------------------------


def test_time_from_job_name() -> None:
    # Verified on the cluster: job probe-29926000 was scheduled at 2026-11-24T22:40:00Z.
    assert time_from_job_name("probe-29926000") == datetime(2026, 11, 24, 22, 40, tzinfo=UTC)
    assert time_from_job_name("nightly-cron-1a2b3c4d-29926000") == datetime(
        2026, 11, 24, 22, 40, tzinfo=UTC
    )
    for name in (None, "", "manual", "nightly-manual-x7k2p", "x-99999999999999999999"):
        assert time_from_job_name(name) is None


def test_scheduled_time_prefers_explicit_then_job_name_then_the_schedule() -> None:
    explicit = datetime(2026, 1, 1, tzinfo=UTC)
    assert scheduled_time("* * * * *", "cj-29926000", explicit, NOW)[0] == explicit
    # From the Job name, even if the pod runs (much) later: a retried pod keeps its time.
    later = NOW + timedelta(minutes=7)
    when, origin = scheduled_time("* * * * *", "cj-29926000", None, later)
    assert when == datetime(2026, 11, 24, 22, 40, tzinfo=UTC) and "Job name" in origin
    # A name whose time is not on the schedule (a hand-made Job) falls back to the schedule.
    when, origin = scheduled_time("0 * * * *", "cj-29926000", None, NOW)
    assert when == datetime(2026, 11, 24, 22, 0, tzinfo=UTC) and "latest" in origin
    assert scheduled_time("*/5 * * * *", None, None, NOW)[0] == datetime(
        2026, 11, 24, 22, 40, tzinfo=UTC
    )


def test_latest_time_includes_the_current_minute() -> None:
    assert latest_time("40 22 * * *", NOW) == datetime(2026, 11, 24, 22, 40, tzinfo=UTC)
    assert latest_time("41 22 * * *", NOW) == datetime(2026, 11, 23, 22, 41, tzinfo=UTC)
    assert latest_time("@hourly", NOW) == datetime(2026, 11, 24, 22, 0, tzinfo=UTC)


def test_run_is_named_after_its_scheduled_time() -> None:
    when = datetime(2026, 11, 24, 22, 40, tzinfo=UTC)
    assert cron_run_name("nightly-cron-1a2b3c4d", when) == "nightly-cron-1a2b3c4d-20261124-2240"
    body = run_manifest(
        namespace="ns", workflow="nightly", schedule="* * * * *",
        prefix="nightly-cron-1a2b3c4d", scheduled=when,
    )  # fmt: skip
    assert body["metadata"]["name"] == "nightly-cron-1a2b3c4d-20261124-2240"
    assert body["metadata"]["namespace"] == "ns"
    assert body["metadata"]["labels"]["kubehatch.dev/trigger-type"] == "cron"
    assert body["metadata"]["annotations"]["kubehatch.dev/trigger"] == "cron:* * * * *"
    assert body["spec"]["triggeredBy"] == {
        "type": "Cron",
        "source": "* * * * * at 2026-11-24T22:40:00Z",
    }
    assert body["spec"]["scheduledAt"] == "2026-11-24T22:40:00Z"
    assert body["spec"]["workflowRef"] == {"name": "nightly"}


def test_the_run_is_valid_for_the_api_models() -> None:
    from kubehatch.api import WorkflowRun

    body = run_manifest(
        namespace="ns", workflow="nightly", schedule="@daily", prefix="p",
        scheduled=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    run = WorkflowRun.model_validate(body)
    assert run.spec.triggered_by.type.value == "Cron"


def test_trigger_creates_the_run_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    created: list[dict[str, Any]] = []

    def create(body: dict[str, Any]) -> bool:
        first = body["metadata"]["name"] not in {b["metadata"]["name"] for b in created}
        created.append(body)
        return first

    monkeypatch.setattr(trigger_cli, "create_run", create)
    monkeypatch.setenv("KUBEHATCH_NAMESPACE", "ns")
    monkeypatch.setenv("KUBEHATCH_JOB_NAME", "nightly-cron-1a2b3c4d-29926000")
    argv = ["trigger", "--workflow", "nightly", "--schedule", "* * * * *", "--run-prefix", "p"]
    assert main(argv) == 0
    assert main(argv) == 0  # a retried pod
    assert [b["metadata"]["name"] for b in created] == ["p-20261124-2240"] * 2
    out = capsys.readouterr().out.splitlines()
    assert "created" in out[0] and "Job name nightly-cron-1a2b3c4d-29926000" in out[0]
    assert "already exists" in out[1]
    assert json.dumps(created[0])  # plain JSON for the API


def test_trigger_needs_a_namespace_and_a_valid_schedule(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBEHATCH_NAMESPACE", raising=False)
    argv = ["trigger", "--workflow", "w", "--schedule", "* * * * *", "--run-prefix", "p"]
    assert main(argv) == 1
    assert "no namespace" in capsys.readouterr().err
    bad = ["trigger", "--workflow", "w", "--schedule", "61 * * * *", "--run-prefix", "p", "-n", "x"]
    assert main(bad) == 1
    assert "not a valid cron schedule" in capsys.readouterr().err
