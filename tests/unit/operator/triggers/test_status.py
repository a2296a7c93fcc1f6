"""The Workflow status the triggers write: Ready, next times, last runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubehatch_operator.triggers.model import WorkflowInfo, workflow_info
from kubehatch_operator.triggers.status import (
    readiness,
    ready_changed,
    status_differs,
    trigger_keys,
    workflow_status,
)

NOW = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
STEPS = [{"name": "one", "action": "svc:one"}]


def body(triggers: dict, suspend: bool = False, status: dict | None = None, **spec: object) -> dict:
    return {
        "metadata": {"namespace": "ns", "name": "wf", "uid": "u", "generation": 3},
        "spec": {"image": "img", "steps": STEPS, "triggers": triggers, "suspend": suspend, **spec},
        "status": status or {},
    }


def test_invalid_cron_is_not_ready_and_names_the_expression() -> None:
    workflow = workflow_info(body({"crons": ["0 * * * *", "61 * * * *"]}))
    assert workflow.problems == ()  # cron schedules are reported apart
    ready = readiness(workflow, image_missing=False)
    assert (ready.status, ready.reason) == ("False", "InvalidCronSchedule")
    assert "spec.triggers.crons[1]: '61 * * * *'" in ready.message
    assert "out of range" in ready.message


def test_other_spec_problems_are_not_ready() -> None:
    workflow = workflow_info(body({}, steps=[{"name": "one", "action": "one"}], image=None))
    ready = readiness(workflow, image_missing=False)
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert "spec.steps" in ready.message


def test_bad_at_time_is_a_spec_problem() -> None:
    workflow = workflow_info(body({"at": ["tomorrow", "2026-06-01T12:00:00"]}))
    assert workflow.at == ()
    ready = readiness(workflow, image_missing=False)
    assert ready.reason == "InvalidSpec"
    assert "spec.triggers.at[0]: 'tomorrow'" in ready.message


def test_crons_without_trigger_image_and_refused_cronjobs() -> None:
    workflow = workflow_info(body({"crons": ["0 * * * *"]}))
    assert readiness(workflow, image_missing=True).reason == "TriggerImageMissing"
    assert "KUBEHATCH_TRIGGER_IMAGE" in readiness(workflow, image_missing=True).message
    refused = readiness(workflow, image_missing=False, cron_errors=["no"])
    assert (refused.status, refused.reason, refused.message) == ("False", "CronJobRejected", "no")
    # Without crons the image does not matter.
    assert readiness(workflow_info(body({})), image_missing=True).status == "True"


def test_ready_message_summarises_triggers() -> None:
    workflow = workflow_info(
        body({"events": ["a", "b"], "crons": ["0 * * * *"], "at": ["2026-06-02T00:00:00Z"]})
    )
    ready = readiness(workflow, image_missing=False)
    assert (ready.status, ready.reason) == ("True", "Ready")
    assert ready.message == "2 event trigger(s), 1 cron schedule(s), 1 one-off time(s)"
    paused = readiness(workflow_info(body({"events": ["a"]}, suspend=True)), image_missing=False)
    assert paused.message.endswith("suspended: triggers start no runs")


def test_status_fields() -> None:
    workflow = workflow_info(
        body(
            {
                "events": ["user:*"],
                "crons": ["0 * * * *"],
                "at": ["2026-06-01T12:00:40Z", "2026-06-01T11:00:00Z"],
            },
            status={
                "conditions": [{"type": "Other", "status": "True", "reason": "X"}],
                "lastTriggered": {"at:2026-06-01T11:00:00Z": "wf-at-1"},
            },
        )
    )
    last = {**workflow.last_triggered, "event:user:*": "wf-abc", "cron:gone": "wf-old"}
    ready = readiness(workflow, image_missing=False)
    status = workflow_status(workflow, NOW, ready=ready, last_triggered=last)
    assert status["observedGeneration"] == 3
    assert [c["type"] for c in status["conditions"]] == ["Other", "Ready"]
    assert status["conditions"][1]["observedGeneration"] == 3
    assert status["conditions"][1]["lastTransitionTime"] == "2026-06-01T12:00:30Z"
    assert status["nextScheduleTimes"] == ["2026-06-01T12:00:40Z", "2026-06-01T13:00:00Z"]
    # Entries of triggers no longer in the spec are dropped.
    assert status["lastTriggered"] == {
        "at:2026-06-01T11:00:00Z": "wf-at-1",
        "event:user:*": "wf-abc",
    }


def test_transition_time_is_kept_while_the_status_holds() -> None:
    workflow = workflow_info(body({}))
    ready = readiness(workflow, image_missing=False)
    first = workflow_status(workflow, NOW, ready=ready, last_triggered={})
    later = workflow_info(body({}, status=first))
    second = workflow_status(later, NOW + timedelta(hours=1), ready=ready, last_triggered={})
    assert second["conditions"][0]["lastTransitionTime"] == "2026-06-01T12:00:30Z"
    assert not status_differs(first, second)
    assert not ready_changed(first, second)
    broken = readiness(workflow_info(body({"crons": ["x"]})), image_missing=False)
    third = workflow_status(later, NOW + timedelta(hours=1), ready=broken, last_triggered={})
    assert third["conditions"][0]["lastTransitionTime"] == "2026-06-01T13:00:30Z"
    assert ready_changed(first, third) and status_differs(first, third)


def test_suspended_workflows_have_no_next_times() -> None:
    workflow = workflow_info(body({"crons": ["0 * * * *"]}, suspend=True))
    ready = readiness(workflow, image_missing=False)
    assert workflow_status(workflow, NOW, ready=ready, last_triggered={})["nextScheduleTimes"] == []


def test_status_differs_compares_times_as_times() -> None:
    old = {"nextScheduleTimes": ["2026-06-01T12:00:00+00:00"], "lastTriggered": {}}
    assert not status_differs(old, {"nextScheduleTimes": ["2026-06-01T12:00:00Z"]})
    assert status_differs(old, {"nextScheduleTimes": ["2026-06-01T12:01:00Z"]})
    assert status_differs(old, {"lastTriggered": {"a": "b"}})
    assert not status_differs({}, {"lastTriggered": {}})


def test_trigger_keys() -> None:
    workflow = WorkflowInfo(
        namespace="ns", name="wf", events=("a",), crons=("* * * * *",),
        at=(datetime(2026, 1, 1, tzinfo=UTC),),
    )  # fmt: skip
    assert trigger_keys(workflow) == {"event:a", "cron:* * * * *", "at:2026-01-01T00:00:00Z"}


def test_workflow_info_reads_what_it_can() -> None:
    info = workflow_info({"metadata": {"namespace": "ns", "name": "wf"}, "spec": "nonsense"})
    assert (info.events, info.crons, info.at, info.suspend) == ((), (), (), False)
    assert info.problems  # the missing steps are reported
