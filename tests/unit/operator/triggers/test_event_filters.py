"""Filtered event triggers: which entry matches, filters true, false and failing, and
what the event's status and the runs say (issue 14, item 5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubehatch.api import wire
from kubehatch.api.triggerspec import event_trigger, filter_accepts
from kubehatch_operator.triggers.events import match_workflows, plan_event
from kubehatch_operator.triggers.model import EventInfo, WorkflowInfo, workflow_info
from kubehatch_operator.triggers.status import readiness, trigger_keys

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BIG = "event.data.amount > 100"


def event(key: str = "order:paid", payload: dict | None = None, **kw: object) -> EventInfo:
    values: dict = dict(
        namespace="ns", name="ev-1", uid="uid-1", generation=1, key=key,
        payload={"amount": 150} if payload is None else payload, metadata={}, handled_at=None,
    )  # fmt: skip
    values.update(kw)
    return EventInfo(**values)


def wf(name: str, *filtered: tuple[str, str], events: tuple[str, ...] = (), **kw: object):
    return WorkflowInfo(namespace="ns", name=name, events=events, filtered_events=filtered, **kw)


@pytest.mark.parametrize(
    ("expression", "payload", "metadata", "accepted"),
    [
        (BIG, {"amount": 150}, {}, True),
        (BIG, {"amount": 100}, {}, False),
        (BIG, {"amount": 100.5}, {}, True),
        ("event.metadata.source == 'web'", {}, {"source": "web"}, True),
        ("event.metadata.source == 'web'", {}, {"source": "api"}, False),
        ("'source' in event.metadata && event.metadata.source == 'web'", {}, {}, False),
        ("event.key.startsWith('order:')", {}, {}, True),
        (
            "input.amount > 100 && additional_metadata.tier == 'gold'",
            {"amount": 101},
            {"tier": "gold"},
            True,
        ),
        ("has(event.data.amount)", {}, {}, False),
        ("event.data.items.exists(i, i.sku == 'A1')", {"items": [{"sku": "A1"}]}, {}, True),
    ],
)
def test_filter_accepts(expression: str, payload: dict, metadata: dict, accepted: bool) -> None:
    assert filter_accepts(expression, "order:paid", payload, metadata) is accepted


@pytest.mark.parametrize(
    ("expression", "payload", "error"),
    [
        (BIG, {}, "no such member"),  # a field the payload lacks
        ("event.data.amount", {"amount": 3}, "gave 3, not true or false"),
        ("event.data.amount >", {"amount": 3}, "failed"),  # does not even parse
        ("event.data.amount > 'x'", {"amount": 3}, "failed"),
    ],
)
def test_a_failing_filter_says_why(expression: str, payload: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error) as caught:
        filter_accepts(expression, "order:paid", payload)
    assert "filter" in str(caught.value)


def test_a_true_filter_starts_a_run_named_after_its_entry() -> None:
    plan = plan_event(event(), [wf("big", ("order:*", BIG))], NOW)
    (run,) = plan.runs
    assert plan.reason == "RunsCreated" and not plan.warning
    trigger = run["metadata"]["annotations"][wire.ANNOTATION_TRIGGER]
    assert trigger == event_trigger("order:*", BIG) == f"event:order:* if {BIG}"
    assert [m.trigger for m in plan.matches] == [trigger]


def test_a_false_filter_starts_nothing_and_says_so() -> None:
    plan = plan_event(event(payload={"amount": 5}), [wf("big", ("order:*", BIG))], NOW)
    assert plan.runs == []
    assert plan.reason == "FilteredOut" and not plan.warning
    assert "big" in plan.message
    (condition,) = plan.status["conditions"]
    assert condition["status"] == "True"


def test_a_failing_filter_starts_nothing_and_names_workflow_filter_and_error() -> None:
    plan = plan_event(event(payload={"total": 5}), [wf("big", ("order:*", BIG))], NOW)
    assert plan.runs == []
    assert (plan.reason, plan.warning) == ("FilterFailed", True)
    assert "workflow 'big'" in plan.message
    assert repr(BIG) in plan.message and "'order:*'" in plan.message
    assert "amount" in plan.message  # celpy's error
    (condition,) = plan.status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "FilterFailed")


def test_a_failure_in_one_workflow_does_not_stop_another() -> None:
    workflows = [wf("big", ("order:*", BIG)), wf("all", events=("order:paid",))]
    plan = plan_event(event(payload={}), workflows, NOW)
    assert [m.workflow for m in plan.matches] == ["all"]
    assert plan.reason == "FilterFailed"
    assert "started 1 run(s)" in plan.message and "workflow 'big'" in plan.message


def test_a_plain_entry_wins_without_evaluating_filters() -> None:
    workflow = wf("mixed", ("order:*", "event.data.missing == 1"), events=("order:paid",))
    plan = plan_event(event(), [workflow], NOW)
    (match,) = plan.matches
    assert (match.pattern, match.filter, match.trigger) == ("order:paid", None, "event:order:paid")
    assert not plan.warning


def test_filtered_entries_exact_key_first_then_the_next_entry_after_a_failure() -> None:
    workflow = wf(
        "several",
        ("order:*", "event.data.nope == 1"),  # fails
        ("order:*", "event.data.amount > 1000"),  # false
        ("order:paid", BIG),  # exact: tried first, true
    )
    (match,) = match_workflows(event(), [workflow]).runs
    assert (match.pattern, match.filter) == ("order:paid", BIG)
    matches = match_workflows(event(payload={"amount": 5, "nope": 2}), [workflow])
    assert matches.runs == [] and matches.filtered_out == ["several"] and not matches.failures
    matches = match_workflows(event("order:refunded", payload={"amount": 5000}), [workflow])
    (match,) = matches.runs
    assert match.filter == "event.data.amount > 1000"
    assert [f.filter for f in matches.failures] == ["event.data.nope == 1"]


def test_keys_that_do_not_match_and_suspended_workflows_evaluate_nothing() -> None:
    failing = ("order:*", "event.data.nope == 1")
    matches = match_workflows(
        event(key="user:created"), [wf("a", failing), wf("b", failing, suspend=True)]
    )
    assert (matches.runs, matches.failures, matches.filtered_out) == ([], [], [])
    matches = match_workflows(event(), [wf("b", failing, suspend=True)])
    assert matches.suspended == ["b"] and not matches.failures


def test_the_filter_sees_metadata_and_priority() -> None:
    workflow = wf("vip", ("order:*", "event.metadata.tier == 'gold' && event.priority == 3"))
    assert match_workflows(event(metadata={"tier": "gold"}, priority=3), [workflow]).runs
    assert not match_workflows(event(metadata={"tier": "gold"}, priority=1), [workflow]).runs


def test_runs_carry_the_events_metadata() -> None:
    plan = plan_event(event(metadata={"source": "web"}), [wf("big", ("order:*", BIG))], NOW)
    (run,) = plan.runs
    assert run["spec"]["additionalMetadata"] == {"source": "web"}
    assert run["spec"]["input"] == {"amount": 150}


def test_workflow_info_reads_filtered_events_leniently() -> None:
    body = {
        "metadata": {"namespace": "ns", "name": "wf"},
        "spec": {
            "image": "i",
            "service": "s",
            "steps": [{"name": "a", "action": "a"}],
            "triggers": {
                "filteredEvents": [
                    {"key": "order:*", "filter": BIG},
                    {"key": "x"},  # unreadable: left out, and reported
                    "nonsense",
                ]
            },
        },
    }
    info = workflow_info(body)
    assert info.filtered_events == (("order:*", BIG),)
    assert any("filteredEvents[1]" in p for p in info.problems)
    assert trigger_keys(info) == {f"event:order:* if {BIG}"}
    assert readiness(info, image_missing=False).reason == "InvalidSpec"


def test_a_filter_that_does_not_parse_makes_the_workflow_not_ready() -> None:
    body = {
        "metadata": {"namespace": "ns", "name": "wf"},
        "spec": {
            "image": "i",
            "service": "s",
            "steps": [{"name": "a", "action": "a"}],
            "triggers": {"filteredEvents": [{"key": "order:*", "filter": "event.data.x >"}]},
        },
    }
    ready = readiness(workflow_info(body), image_missing=False)
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert "spec.triggers.filteredEvents[0].filter" in ready.message


def test_readiness_counts_filtered_event_triggers() -> None:
    ready = readiness(wf("w", ("a", "true"), events=("b",)), image_missing=True)
    assert ready.message == "2 event trigger(s)"
