"""Cron schedules in a time zone: the CronJob, invalid zones, next times in the zone and
daylight-saving changes (issue 14, item 6)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from kubehatch.api import wire
from kubehatch.api.triggerspec import ZonedCron, repeated_wall_time, zone_problem, zoned_times
from kubehatch.api.workflow import Triggers
from kubehatch.cli.trigger import latest_time, run_manifest, scheduled_time
from kubehatch_operator.triggers.crons import (
    TriggerPod,
    cronjob_manifest,
    cronjob_name,
    desired_cronjobs,
    next_cron_times,
    zone_problems,
)
from kubehatch_operator.triggers.model import WorkflowInfo, workflow_info
from kubehatch_operator.triggers.status import readiness, trigger_keys, workflow_status

POD = TriggerPod(image="localhost/kubehatch/operator:1")
PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 26, 12, 0, tzinfo=UTC)  # a Thursday, three days before CEST


def wf(*zoned: tuple[str, str], crons: tuple[str, ...] = (), **kw: object) -> WorkflowInfo:
    return WorkflowInfo(
        namespace="ns", name="office", uid="u", crons=crons, zoned_crons=zoned, **kw
    )


def paris(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=PARIS)


# --- the API: zones checked with zoneinfo ---------------------------------------------------
@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "UTC", "Asia/Kolkata"])
def test_known_zones_are_accepted(zone: str) -> None:
    assert zone_problem(zone) is None
    assert ZonedCron(schedule="0 9 * * 1-5", time_zone=zone).time_zone == zone


@pytest.mark.parametrize(
    ("zone", "hint"),
    [
        ("Europe/Pariss", "did you mean 'Europe/Paris'?"),
        ("europe/paris", "did you mean 'Europe/Paris'?"),
        ("Mars/Olympus_Mons", "use an IANA time zone name"),
        ("Local", "name the zone"),
        ("../../etc/passwd", "use an IANA time zone name"),
        (" ", "name the zone"),
    ],
)
def test_unknown_zones_are_refused_with_a_clear_message(zone: str, hint: str) -> None:
    assert hint in (zone_problem(zone) or "")
    with pytest.raises(ValidationError) as caught:
        Triggers.model_validate({"zonedCrons": [{"schedule": "0 9 * * *", "timeZone": zone}]})
    assert f"{zone!r} is not a time zone" in str(caught.value)
    assert "zonedCrons.0.timeZone" in str(caught.value)


def test_a_zoneinfo_is_accepted_from_python() -> None:
    assert ZonedCron(schedule="0 9 * * *", time_zone=PARIS).to_dict() == {  # type: ignore[arg-type]
        "schedule": "0 9 * * *",
        "timeZone": "Europe/Paris",
    }


# --- daylight saving, with croniter ----------------------------------------------------------
def test_a_time_the_spring_change_skips_does_not_fire_that_day() -> None:
    # Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    times = zoned_times("30 2 * * *", "Europe/Paris", datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert times == [
        paris(2026, 3, 28, 2, 30),
        paris(2026, 3, 30, 2, 30),
        paris(2026, 3, 31, 2, 30),
    ]
    assert [t.utcoffset().total_seconds() / 3600 for t in times] == [1, 2, 2]  # type: ignore[union-attr]


def test_a_time_the_autumn_change_repeats_fires_once() -> None:
    # Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, fires once.
    times = zoned_times("30 2 * * *", "Europe/Paris", datetime(2026, 10, 23, 12, tzinfo=UTC), 3)
    assert [t.astimezone(UTC) for t in times] == [
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first one
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]
    assert repeated_wall_time(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), PARIS)
    assert not repeated_wall_time(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), PARIS)


def test_half_hourly_across_both_changes() -> None:
    spring = zoned_times("*/30 * * * *", "Europe/Paris", datetime(2026, 3, 29, 0, tzinfo=UTC), 3)
    assert spring == [
        paris(2026, 3, 29, 1, 30),
        paris(2026, 3, 29, 3, 0),
        paris(2026, 3, 29, 3, 30),
    ]
    autumn = zoned_times("*/30 * * * *", "Europe/Paris", datetime(2026, 10, 25, 0, tzinfo=UTC), 3)
    assert [t.astimezone(UTC).hour * 60 + t.astimezone(UTC).minute for t in autumn] == [
        30,  # 02:30 CEST
        120,  # 03:00 CET: 02:00 and 02:30 CET repeat wall times that already fired
        150,
    ]


def test_nine_on_weekdays_moves_in_utc_with_the_season() -> None:
    times = zoned_times("0 9 * * 1-5", "Europe/Paris", NOW, 3)
    assert [t.astimezone(UTC) for t in times] == [
        datetime(2026, 3, 27, 8, 0, tzinfo=UTC),  # Friday, CET
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),  # Monday, CEST
        datetime(2026, 3, 31, 7, 0, tzinfo=UTC),
    ]
    assert all((t.hour, t.minute) == (9, 0) for t in times)


def test_without_a_zone_schedules_stay_utc() -> None:
    assert next_cron_times(["0 9 * * *"], NOW) == [datetime(2026, 3, 27, 9, tzinfo=UTC)]
    assert zoned_times("0 9 * * *", None, NOW) == [datetime(2026, 3, 27, 9, tzinfo=UTC)]


# --- the CronJob ---------------------------------------------------------------------------------
def test_the_cronjob_of_a_zoned_schedule_has_its_time_zone() -> None:
    body = cronjob_manifest(wf(), "0 9 * * 1-5", POD, "Europe/Paris")
    assert body["spec"]["timeZone"] == "Europe/Paris"
    assert body["spec"]["schedule"] == "0 9 * * 1-5"
    args = body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--time-zone", "Europe/Paris"]
    annotations = body["metadata"]["annotations"]
    assert annotations[wire.ANNOTATION_TRIGGER] == "cron:0 9 * * 1-5 TZ=Europe/Paris"
    assert body["metadata"]["name"] == cronjob_name("office", "0 9 * * 1-5", "Europe/Paris")


def test_a_plain_schedules_cronjob_is_unchanged() -> None:
    body = cronjob_manifest(wf(), "0 9 * * 1-5", POD)
    assert body["spec"]["timeZone"] == "Etc/UTC"
    assert (
        "--time-zone"
        not in body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    assert body["metadata"]["name"] == cronjob_name("office", "0 9 * * 1-5")


def test_the_same_schedule_in_two_zones_is_two_cronjobs() -> None:
    workflow = wf(("0 9 * * *", "Europe/Paris"), ("0 9 * * *", "Europe/Paris"),
                  ("0 9 * * *", "Asia/Tokyo"), crons=("0 9 * * *",))  # fmt: skip
    bodies = desired_cronjobs(workflow, POD)
    assert bodies is not None
    assert [b["spec"]["timeZone"] for b in bodies] == ["Etc/UTC", "Europe/Paris", "Asia/Tokyo"]
    assert len({b["metadata"]["name"] for b in bodies}) == 3
    assert trigger_keys(workflow) == {
        "cron:0 9 * * *",
        "cron:0 9 * * * TZ=Europe/Paris",
        "cron:0 9 * * * TZ=Asia/Tokyo",
    }


# --- the operator: Ready and status ----------------------------------------------------------
def test_an_invalid_zone_makes_the_workflow_not_ready_and_deletes_its_cronjobs() -> None:
    workflow = wf(("0 9 * * *", "Europe/Paris"), ("0 9 * * *", "Europe/Pariss"))
    (problem,) = zone_problems(workflow.cron_entries)
    assert problem.startswith("spec.triggers.zonedCrons[1].timeZone: 'Europe/Pariss'")
    ready = readiness(workflow, image_missing=False)
    assert (ready.status, ready.reason) == ("False", "InvalidTimeZone")
    assert "did you mean 'Europe/Paris'" in ready.message
    assert desired_cronjobs(workflow, POD) == []


def test_an_invalid_zoned_schedule_is_named_with_its_field() -> None:
    ready = readiness(wf(("61 9 * * *", "Europe/Paris")), image_missing=False)
    assert ready.reason == "InvalidCronSchedule"
    assert ready.message.startswith("spec.triggers.zonedCrons[0].schedule: '61 9 * * *'")
    assert "(read in Europe/Paris)" in ready.message


def test_the_status_lists_next_times_in_the_zone() -> None:
    workflow = wf(("0 9 * * 1-5", "Europe/Paris"), crons=("0 12 * * *",))
    ready = readiness(workflow, image_missing=False)
    assert ready.message == "2 cron schedule(s)"
    status = workflow_status(workflow, NOW, ready=ready, last_triggered={})
    assert status["cronSchedules"] == [
        {"schedule": "0 12 * * *", "timeZone": "UTC", "nextTimes": [
            "2026-03-27T12:00:00Z", "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"]},
        {"schedule": "0 9 * * 1-5", "timeZone": "Europe/Paris", "nextTimes": [
            "2026-03-27T09:00:00+01:00", "2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00"]},
    ]  # fmt: skip
    assert status["nextScheduleTimes"] == ["2026-03-27T08:00:00Z", "2026-03-27T12:00:00Z"]
    suspended = wf(("0 9 * * 1-5", "Europe/Paris"), suspend=True)
    assert (
        "cronSchedules" not in workflow_status(suspended, NOW, ready=ready, last_triggered={})
        or not workflow_status(suspended, NOW, ready=ready, last_triggered={})["cronSchedules"]
    )


def test_workflow_info_reads_zoned_crons_and_leaves_their_checks_to_readiness() -> None:
    body = {
        "metadata": {"namespace": "ns", "name": "wf"},
        "spec": {
            "image": "i",
            "service": "s",
            "steps": [{"name": "a", "action": "a"}],
            "triggers": {"zonedCrons": [{"schedule": "0 9 * * *", "timeZone": "Nowhere/City"}]},
        },
    }
    info = workflow_info(body)
    assert info.zoned_crons == (("0 9 * * *", "Nowhere/City"),)
    assert info.problems == ()  # reported as InvalidTimeZone, not twice as InvalidSpec
    assert readiness(info, image_missing=False).reason == "InvalidTimeZone"


# --- the trigger pod ---------------------------------------------------------------------------
def test_the_trigger_pod_matches_its_time_in_the_zone() -> None:
    fired = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST
    job = f"office-cron-abc-{int(fired.timestamp()) // 60}"
    when, origin = scheduled_time("0 9 * * 1-5", job, None, fired, "Europe/Paris")
    assert (when, origin) == (fired, f"Job name {job}")
    # Read in UTC, the same time is not on the schedule: the latest UTC 09:00 weekday.
    when, _ = scheduled_time("0 9 * * 1-5", job, None, fired)
    assert when == datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
    assert latest_time("0 9 * * 1-5", fired, "Europe/Paris") == fired


def test_the_trigger_pods_run_names_its_zoned_entry() -> None:
    run = run_manifest(
        namespace="ns", workflow="office", schedule="0 9 * * 1-5", prefix="office-cron-x",
        scheduled=datetime(2026, 3, 30, 7, 0, tzinfo=UTC), zone="Europe/Paris",
    )  # fmt: skip
    assert run["metadata"]["annotations"][wire.ANNOTATION_TRIGGER] == (
        "cron:0 9 * * 1-5 TZ=Europe/Paris"
    )
    assert run["metadata"]["name"] == "office-cron-x-20260330-0700"
    assert run["spec"]["triggeredBy"]["source"].startswith("0 9 * * 1-5 (Europe/Paris) at")
