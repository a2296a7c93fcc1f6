"""Event filters and zoned crons in the SDK, many events pushed at once, and the run's
additional metadata reaching the step (issue 14, items 5 and 6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kubehatch import Context, Cron, Crons, Event, Events, Fn, Worker, WorkflowJob
from kubehatch._events import EventInput, parse_lines, push_many
from kubehatch._render import workflow_manifests
from kubehatch._submit import check_event_payload, started_by
from kubehatch.api import stepenv
from kubehatch.api.inputschema import InvalidInputError
from kubehatch.cli import event as event_cli
from kubehatch.cli import main
from kubehatch.cli.get import next_cron_time
from kubehatch.errors import KubehatchError

BIG = "event.data.amount > 100"


def step(ctx: Context) -> dict[str, Any]:
    return {}


def spec_of(*on: Any) -> dict[str, Any]:
    worker = Worker("w", image="i:1")
    worker.register_workflow(WorkflowJob(name="wf", on=list(on), steps=[Fn(step)]))
    (manifest,) = workflow_manifests(worker)
    return manifest["spec"]


# --- the SDK's triggers ------------------------------------------------------------------------
def test_filters_and_zones_render_to_their_own_lists() -> None:
    spec = spec_of(
        Event("user:created"),
        Event("order:*", filter=BIG),
        Events("a", "b", filter="true"),
        Cron("*/5 * * * *"),
        Cron("0 9 * * 1-5", timezone="Europe/Paris"),
        Crons("0 8 * * *", "0 18 * * *", timezone=ZoneInfo("America/New_York")),
    )
    assert spec["triggers"] == {
        "events": ["user:created"],
        "filteredEvents": [
            {"key": "order:*", "filter": BIG},
            {"key": "a", "filter": "true"},
            {"key": "b", "filter": "true"},
        ],
        "crons": ["*/5 * * * *"],
        "zonedCrons": [
            {"schedule": "0 9 * * 1-5", "timeZone": "Europe/Paris"},
            {"schedule": "0 8 * * *", "timeZone": "America/New_York"},
            {"schedule": "0 18 * * *", "timeZone": "America/New_York"},
        ],
    }


def test_plain_triggers_render_as_before() -> None:
    spec = spec_of(Event("user:created"), Cron("0 * * * *"))
    assert spec["triggers"] == {"events": ["user:created"], "crons": ["0 * * * *"]}


def test_triggers_compare_and_print_with_their_options() -> None:
    assert Event("a", filter="true") == Event("a", filter="true") != Event("a")
    assert Cron("0 9 * * *", timezone="UTC") != Cron("0 9 * * *")
    assert repr(Event("a", filter="true")) == "Event('a', filter='true')"
    assert repr(Cron("0 9 * * *", timezone="Europe/Paris")) == (
        "Cron('0 9 * * *', timezone='Europe/Paris')"
    )
    assert len({Event("a", filter="x"), Event("a", filter="x")}) == 1


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        (Event("order:*", filter="event.data.amount >"), "is not a valid CEL expression"),
        (Cron("0 9 * * *", timezone="Europe/Pariss"), "did you mean 'Europe/Paris'?"),
        (Cron("61 9 * * *", timezone="Europe/Paris"), "is not a cron schedule"),
    ],
)
def test_bad_filters_and_zones_are_refused_at_their_line(trigger: Any, message: str) -> None:
    worker = Worker("w", image="i:1")
    worker.register_workflow(WorkflowJob(name="wf", on=[Event("x"), trigger], steps=[Fn(step)]))
    problems = worker.workflow("wf").problems
    assert len(problems) == 1
    assert message in problems[0].message
    assert problems[0].origin == trigger.origin
    assert "test_event_filters_sdk.py" in trigger.origin


# --- the client: which workflows an event starts -------------------------------------------------
def workflow(name: str, triggers: dict[str, Any], schema: dict | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"triggers": triggers}
    if schema:
        spec["inputSchema"] = schema
    return {"metadata": {"name": name}, "spec": spec}


WORKFLOWS = [
    workflow("plain", {"events": ["order:*"]}),
    workflow("big", {"filteredEvents": [{"key": "order:*", "filter": BIG}]}),
    workflow("broken", {"filteredEvents": [{"key": "order:*", "filter": "event.data.x.y"}]}),
    workflow(
        "web", {"filteredEvents": [{"key": "order:paid", "filter": "event.metadata.s == 'w'"}]}
    ),
]


def test_started_by_evaluates_filters_as_the_operator_does() -> None:
    def names(payload: dict, metadata: dict | None = None) -> list[str]:
        found = started_by(WORKFLOWS, "order:paid", payload, metadata)
        return [w["metadata"]["name"] for w in found]

    assert names({"amount": 5}) == ["plain"]
    assert names({"amount": 500}) == ["plain", "big"]
    assert names({"amount": 500}, {"s": "w"}) == ["plain", "big", "web"]


def test_the_payload_is_checked_only_against_workflows_whose_filter_passes() -> None:
    schema = {
        "type": "object",
        "required": ["amount"],
        "properties": {"amount": {"type": "integer"}},
    }
    strict = [
        workflow("big", {"filteredEvents": [{"key": "o", "filter": "has(event.data.n)"}]}, schema)
    ]
    check_event_payload("o", strict, {"x": 1})  # filter false: not started, not checked
    with pytest.raises(InvalidInputError, match="amount"):
        check_event_payload("o", strict, {"n": 1})


# --- many events -------------------------------------------------------------------------------
def test_parse_lines() -> None:
    events = parse_lines(
        '{"key": "a", "data": {"n": 1}}\n\n'
        '{"key": "b", "metadata": {"source": "web"}, "priority": 3}\n'
    )
    assert events == [
        EventInput("a", {"n": 1}, None, None, line=1),
        EventInput("b", {}, {"source": "web"}, 3, line=3),
    ]


def test_parse_lines_reports_every_bad_line_with_its_number() -> None:
    text = "\n".join(
        [
            '{"key": "ok"}',
            "{key: 1}",
            "[1, 2]",
            '{"data": {}}',
            '{"key": "a", "data": [1]}',
            '{"key": "a", "metadata": {"n": 1}}',
            '{"key": "a", "priority": "high"}',
            '{"key": "a", "payload": {}}',
        ]
    )
    with pytest.raises(KubehatchError) as caught:
        parse_lines(text)
    message = str(caught.value)
    assert message.startswith("7 bad line(s), nothing was pushed: ")
    for expected in [
        "line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        "line 3: a JSON object is expected, not list",
        "line 4: no key (a string)",
        "line 5: data must be a JSON object",
        "line 6: metadata must be a JSON object of strings",
        "line 7: priority must be 1, 2 or 3",
        "line 8: unknown field(s) payload",
    ]:
        assert expected in message
    assert "line 1" not in message
    with pytest.raises(KubehatchError, match="no events"):
        parse_lines("\n \n")


def _as_input(value: Any, what: str) -> dict[str, Any]:
    return value or {}


def test_push_many_checks_all_then_creates_each() -> None:
    created: list[dict[str, Any]] = []

    def create(body: dict[str, Any]) -> str:
        created.append(body)
        if body["spec"]["key"] == "refused":
            raise KubehatchError("the API server refused it")
        return f"event-{len(created)}"

    events = [EventInput("a", {"n": i}, {"m": "1"}, line=i + 1) for i in range(3)]
    events.append(EventInput("refused", line=4))
    results = push_many(
        events, workflows=[], as_input=_as_input, check=check_event_payload, create=create
    )
    assert [r.error for r in results] == [None, None, None, "the API server refused it"]
    assert all(r.name for r in results[:3]) and results[3].name is None
    assert [r.event for r in results] == events
    assert len(created) == 4
    assert created[0]["kind"] == "WorkflowEvent"
    assert created[0]["spec"]["additionalMetadata"] == {"m": "1"}


def test_push_many_creates_nothing_when_one_event_is_invalid() -> None:
    schema = {"type": "object", "required": ["n"]}
    listening = [workflow("w", {"events": ["a"]}, schema)]
    events = [
        EventInput("a", {"n": 1}, line=1),
        EventInput("has space", line=2),
        EventInput("a", {"x": 1}, line=3),
        EventInput("a", {"n": 1}, priority=7, line=4),
    ]
    with pytest.raises(KubehatchError) as caught:
        push_many(
            events, workflows=listening, as_input=_as_input, check=check_event_payload,
            create=lambda body: pytest.fail("nothing may be created"),
        )  # fmt: skip
    message = str(caught.value)
    assert message.startswith("3 of 4 event(s) are invalid, none was pushed")
    assert "line 2: spec.key: Value error, 'has space' is not a valid event key" in message
    assert "line 3: " in message and "'w'" in message
    assert "line 4: spec.priority" in message


class FakeEvents:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def push_many(self, events: list[EventInput]) -> list[Any]:
        def create(body: dict[str, Any]) -> str:
            self.created.append(body)
            if body["spec"]["payload"].get("fail"):
                raise KubehatchError("refused")
            return f"event-{body['spec']['payload']['n']}"

        return push_many(
            events, workflows=[], as_input=_as_input, check=check_event_payload, create=create
        )


class FakeClient:
    namespace = "ns"

    def __init__(self) -> None:
        self.event = FakeEvents()


def test_cli_pushes_a_file_and_reports_each_event(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeClient()
    monkeypatch.setattr(event_cli, "client", lambda _args: fake)
    path = tmp_path / "events.jsonl"
    lines = [{"key": "k", "data": {"n": n}} for n in range(3)]
    path.write_text("\n".join(json.dumps(line) for line in lines))
    assert main(["event", "push", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "line 1: workflowevent/event-0 pushed (key k)" in out
    assert "line 3: workflowevent/event-2 pushed (key k)" in out
    assert "3 of 3 event(s) pushed to namespace ns" in out

    path.write_text('{"key": "k", "data": {"n": 1}}\n{"key": "k", "data": {"n": 2, "fail": 1}}')
    assert main(["event", "push", "-f", str(path)]) == 1
    out = capsys.readouterr().out
    assert "line 2: not pushed (key k): refused" in out and "1 of 2 event(s) pushed" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["k", "--file", "x.jsonl"], "drop KEY"),
        (["--file", "x.jsonl", "--data", "{}"], "drop --data"),
        (["--file", "x.jsonl", "--priority", "2"], "drop --priority"),
        (["--file", "/nonexistent/events.jsonl"], "--file: cannot read"),
        ([], "name the event key (KEY), or give --file"),
    ],
)
def test_cli_file_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
    message: str,
) -> None:  # fmt: skip
    monkeypatch.setattr(event_cli, "client", lambda _args: FakeClient())
    assert main(["event", "push", *argv]) == 1
    assert message in capsys.readouterr().err


def test_cli_bad_lines_push_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeClient()
    monkeypatch.setattr(event_cli, "client", lambda _args: fake)
    path = tmp_path / "events.jsonl"
    path.write_text('{"key": "k"}\nnope\n')
    assert main(["event", "push", "--file", str(path)]) == 1
    assert "line 2: not valid JSON" in capsys.readouterr().err
    assert fake.event.created == []


# --- the CLI shows next times in the schedule's zone ---------------------------------------------
def test_next_cron_time_is_shown_in_the_schedules_zone() -> None:
    status = {
        "cronSchedules": [
            {"schedule": "0 12 * * *", "timeZone": "UTC", "nextTimes": ["2026-03-30T12:00:00Z"]},
            {"schedule": "0 9 * * 1-5", "timeZone": "Europe/Paris",
             "nextTimes": ["2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00"]},
        ]
    }  # fmt: skip
    assert next_cron_time(status) == "Mon 2026-03-30 09:00 CEST (Europe/Paris, 0 9 * * 1-5)"
    assert next_cron_time({}) == "-"


# --- additional metadata reaches the step ------------------------------------------------------
def test_step_env_carries_the_runs_metadata() -> None:
    step_env = stepenv.StepEnv(
        namespace="ns", workflow="wf", run="r", run_uid="u", step="s", action="svc:s",
        attempt=1, parents=(), output_configmap="cm", worker="m:w",
        additional_metadata=json.dumps({"source": "web"}),
    )  # fmt: skip
    env = step_env.to_env()
    assert env["KUBEHATCH_ADDITIONAL_METADATA"] == '{"source": "web"}'
    assert stepenv.StepEnv.from_env(env) == step_env
    plain = stepenv.StepEnv.from_env({k: v for k, v in env.items() if "METADATA" not in k})
    assert plain.additional_metadata is None


def test_context_exposes_additional_metadata() -> None:
    ctx = Context(additional_metadata={"source": "web"})
    assert ctx.additional_metadata == {"source": "web"}
    assert ctx.with_value("k", 1).additional_metadata == {"source": "web"}
    ctx.additional_metadata["x"] = "y"  # a copy: the context does not change
    assert ctx.additional_metadata == {"source": "web"}
    assert Context().additional_metadata == {}


def test_the_example_runs_and_its_step_reads_the_metadata() -> None:
    from examples.ex20_filters_and_time_zones import worker
    from kubehatch.api.triggerspec import filter_accepts

    spec = worker.workflow("review-big-orders").spec
    (entry,) = spec.triggers.filtered_events
    assert filter_accepts(entry.filter, "order:paid", {"amount": 250}, {"source": "web"})
    assert not filter_accepts(entry.filter, "order:paid", {"amount": 250}, {"source": "api"})
    (cron,) = worker.workflow("paris-morning-report").spec.triggers.zoned_crons
    assert (cron.schedule, cron.time_zone) == ("0 9 * * 1-5", "Europe/Paris")
    ctx = Context(workflow_input={"id": 7, "amount": 250}, additional_metadata={"source": "web"})
    from examples.ex20_filters_and_time_zones import review

    assert review(ctx) == {"order": "7", "source": "web"}
