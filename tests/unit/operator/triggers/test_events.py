"""Which workflows an event starts, the runs it creates, and its status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubehatch_operator.triggers.events import (
    deletion_due,
    key_matches,
    match_workflows,
    matching_pattern,
    plan_event,
    run_name,
)
from kubehatch_operator.triggers.model import EventInfo, WorkflowInfo, event_info

NOW = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def event(key: str | None = "user:created", **kw: object) -> EventInfo:
    values: dict = dict(
        namespace="ns", name="ev-1", uid="uid-1", generation=1, key=key,
        payload={"user": "ada"}, metadata={}, handled_at=None,
    )  # fmt: skip
    values.update(kw)
    return EventInfo(**values)


def wf(name: str, *events: str, namespace: str = "ns", suspend: bool = False) -> WorkflowInfo:
    return WorkflowInfo(namespace=namespace, name=name, events=events, suspend=suspend)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("user:created", "user:created", True),
        ("user:created", "user:deleted", False),
        ("user:created", "user:created:now", False),
        ("user:*", "user:created", True),
        ("user:*", "user:", True),
        ("user:*", "users:created", False),
        ("user:*", "order:paid", False),
        ("*", "anything", True),
        ("u*er", "user", False),  # '*' is a wildcard only at the end
        ("u*er", "u*er", True),
        ("USER:created", "user:created", False),  # keys are case-sensitive
    ],
)
def test_key_matches(pattern: str, key: str, matches: bool) -> None:
    assert key_matches(pattern, key) is matches


def test_exact_entry_wins_over_a_wildcard() -> None:
    assert matching_pattern(wf("w", "user:*", "user:created"), "user:created") == "user:created"
    assert matching_pattern(wf("w", "user:*", "user:created"), "user:deleted") == "user:*"
    assert matching_pattern(wf("w", "a", "b"), "c") is None


def test_match_selects_same_namespace_not_suspended_sorted() -> None:
    workflows = [
        wf("zeta", "user:created"),
        wf("alpha", "user:*"),
        wf("other-ns", "user:created", namespace="elsewhere"),
        wf("paused", "user:created", suspend=True),
        wf("deaf", "order:paid"),
    ]
    matches = match_workflows(event(), workflows)
    assert [(m.workflow, m.pattern) for m in matches.runs] == [
        ("alpha", "user:*"),
        ("zeta", "user:created"),
    ]
    assert matches.suspended == ["paused"]


def test_either_of_two_keys() -> None:
    workflows = [wf("either", "a", "b")]
    assert [m.workflow for m in match_workflows(event("a"), workflows).runs] == ["either"]
    assert [m.workflow for m in match_workflows(event("b"), workflows).runs] == ["either"]
    assert match_workflows(event("c"), workflows).runs == []


def test_run_names_are_deterministic_per_event_and_workflow() -> None:
    assert run_name("wf", "uid-1") == run_name("wf", "uid-1")
    assert run_name("wf", "uid-1") != run_name("wf", "uid-2")
    assert run_name("wf", "uid-1") != run_name("other", "uid-1")
    assert run_name("wf", "uid-1").startswith("wf-")
    assert len(run_name("w" * 300, "uid")) <= 253


def test_plan_creates_one_run_per_match_with_payload_and_origin() -> None:
    plan = plan_event(
        event(metadata={"source": "signup"}, priority=3),
        [wf("b-flow", "user:created"), wf("a-flow", "user:*")],
        NOW,
    )
    assert [r["spec"]["workflowRef"]["name"] for r in plan.runs] == ["a-flow", "b-flow"]
    run = plan.runs[0]
    assert run["metadata"]["namespace"] == "ns"
    assert run["spec"]["input"] == {"user": "ada"}
    assert run["spec"]["triggeredBy"] == {"type": "Event", "source": "ev-1 (user:created)"}
    assert run["metadata"]["labels"]["kubehatch.dev/trigger-type"] == "event"
    assert run["metadata"]["labels"]["kubehatch.dev/event"] == "ev-1"
    assert run["metadata"]["annotations"]["kubehatch.dev/trigger"] == "event:user:*"
    assert run["metadata"]["annotations"]["kubehatch.dev/event-metadata"] == '{"source": "signup"}'
    # ...and in the run's spec, where concurrency expressions read it.
    assert run["spec"]["additionalMetadata"] == {"source": "signup"}
    assert run["spec"]["priority"] == 3
    assert "ownerReferences" not in run["metadata"]  # runs outlive the event (retention)
    status = plan.status
    assert status["runs"] == [r["metadata"]["name"] for r in plan.runs]
    assert status["handledAt"] == "2026-06-01T12:00:00Z"
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Handled", "True", "RunsCreated",
    )  # fmt: skip
    assert condition["observedGeneration"] == 1


def test_plan_is_the_same_when_replayed() -> None:
    workflows = [wf("a", "user:created")]
    assert plan_event(event(), workflows, NOW).runs == plan_event(event(), workflows, NOW).runs


def test_no_match_is_handled_and_says_why() -> None:
    plan = plan_event(event("order:paid"), [wf("a", "user:*")], NOW)
    assert plan.runs == [] and plan.status["runs"] == []
    condition = plan.status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("True", "NoMatchingWorkflow")
    assert "'order:paid'" in condition["message"] and "spec.triggers.events" in condition["message"]


def test_suspended_listeners_are_reported() -> None:
    plan = plan_event(event(), [wf("paused", "user:created", suspend=True)], NOW)
    assert plan.runs == []
    assert "suspended, not started: paused" in plan.message


def test_event_without_key_is_a_warning_with_the_fix() -> None:
    plan = plan_event(event(None), [wf("a", "*")], NOW)
    assert plan.runs == [] and plan.warning
    condition = plan.status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "InvalidEvent")
    assert "spec.key" in condition["message"] and "'ev-1'" in condition["message"]


def test_event_info_reads_a_body_leniently() -> None:
    info = event_info(
        {
            "metadata": {"namespace": "ns", "name": "e", "uid": "u", "generation": 2},
            "spec": {"key": "k", "payload": {"x": 1}, "additionalMetadata": {"a": 1}},
            "status": {"handledAt": "2026-06-01T12:00:00Z"},
        }
    )
    assert (info.key, info.payload, info.metadata) == ("k", {"x": 1}, {"a": "1"})
    assert info.handled_at == datetime(2026, 6, 1, 12, tzinfo=UTC)
    bare = event_info({"metadata": {"namespace": "ns", "name": "e"}, "spec": {"payload": []}})
    assert (bare.key, bare.payload, bare.handled_at) == (None, {}, None)


def test_deletion_due_after_retention() -> None:
    assert deletion_due(NOW, timedelta(hours=1)) == NOW + timedelta(hours=1)
    assert deletion_due(NOW, timedelta(0)) == NOW
