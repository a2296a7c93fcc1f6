"""The trigger handlers' flow (read, decide, write) against an in-memory API.

The decisions are tested on their own; these tests check the glue: what is written,
that replays and restarts write nothing twice, and what is retried.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubehatch.api.wire import parse_time
from kubehatch_operator.settings import Settings, TriggerSettings
from kubehatch_operator.store import Store
from kubehatch_operator.triggers.controller import Triggers
from kubehatch_operator.triggers.model import workflow_info
from kubehatch_operator.triggers.schedules import at_run, run_name
from kubehatch_operator.workqueue import KeyedQueue
from tests.unit.operator.fakekube import FakeKube


def settings(image: str | None = "op:1", retention: float = 3600) -> Settings:
    return Settings(
        triggers=TriggerSettings(image=image, event_retention=timedelta(seconds=retention))
    )


def triggers(kube: FakeKube, **kw: Any) -> Triggers:
    return Triggers(Store(), kube, settings(**kw))  # type: ignore[arg-type]


def at(seconds: float) -> str:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return when.isoformat().replace("+00:00", "Z")


def time(text: str) -> datetime:
    parsed = parse_time(text)
    assert parsed is not None
    return parsed


async def sync(t: Triggers, name: str) -> float | None:
    return await t.sync_workflow(("ns", name))


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


# --- one-off times -------------------------------------------------------------------------


def test_a_due_time_fires_once_and_is_recorded() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        past, future = at(-5), at(600)
        t = triggers(kube)
        t.store.observe_workflow(kube.add_workflow("one-off", at=[past, future]))
        delay = await sync(t, "one-off")
        assert list(kube.runs) == [run_name("one-off", time(past))]
        assert delay is not None and 590 < delay <= 600  # wakes at the future time
        status = kube.workflows["one-off"]["status"]
        assert status["lastTriggered"] == {f"at:{past}": next(iter(kube.runs))}
        assert status["nextScheduleTimes"] == [future]
        # Syncing again (a watch event) creates nothing.
        await sync(t, "one-off")
        assert kube.run_creates == 1

    run_async(scenario())


def test_a_restarted_operator_does_not_fire_a_recorded_time_even_if_its_run_is_gone() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        past = at(-5)
        first = triggers(kube)
        first.store.observe_workflow(kube.add_workflow("one-off", at=[past]))
        await sync(first, "one-off")
        kube.runs.clear()  # deleted by TTL
        restarted = triggers(kube)
        restarted.store.observe_workflow(copy.deepcopy(kube.workflows["one-off"]))
        await sync(restarted, "one-off")
        assert kube.runs == {} and kube.run_creates == 1

    run_async(scenario())


def test_killed_between_create_and_record_the_same_run_is_found_again() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        past = at(-5)
        body = kube.add_workflow("one-off", at=[past])
        # What the killed operator managed to do before it died.
        await kube.create_run(at_run(workflow_info(body), time(past)))
        restarted = triggers(kube)
        restarted.store.observe_workflow(copy.deepcopy(body))
        await sync(restarted, "one-off")
        assert len(kube.runs) == 1 and kube.run_creates == 2  # the second was a 409
        assert kube.workflows["one-off"]["status"]["lastTriggered"] == {
            f"at:{past}": next(iter(kube.runs))
        }

    run_async(scenario())


def test_suspended_workflows_fire_nothing() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        t = triggers(kube)
        t.store.observe_workflow(kube.add_workflow("one-off", suspend=True, at=[at(-5)]))
        assert await sync(t, "one-off") is None
        assert kube.runs == {}

    run_async(scenario())


# --- cron schedules --------------------------------------------------------------------------


def test_cronjobs_follow_the_spec_and_are_listed_once_per_generation() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        t = triggers(kube)
        t.store.observe_workflow(kube.add_workflow("nightly", crons=["0 0 * * *"]))
        await sync(t, "nightly")
        assert [c["spec"]["schedule"] for c in kube.cronjobs.values()] == ["0 0 * * *"]
        await sync(t, "nightly")
        assert kube.cronjob_lists == 1
        status = kube.workflows["nightly"]["status"]
        assert status["conditions"][0]["status"] == "True"
        assert kube.posted == [("nightly", "Normal", "Ready")]
        # A new generation: suspended.
        body = kube.workflows["nightly"]
        body["spec"]["suspend"], body["metadata"]["generation"] = True, 2
        t.store.observe_workflow(kube._bump(body))
        await sync(t, "nightly")
        assert [c["spec"]["suspend"] for c in kube.cronjobs.values()] == [True]
        # An invalid schedule: the CronJob goes, the workflow is not Ready, a Warning.
        body["spec"]["triggers"]["crons"], body["metadata"]["generation"] = ["0 0 * *"], 3
        t.store.observe_workflow(kube._bump(body))
        await sync(t, "nightly")
        assert kube.cronjobs == {}
        ready = kube.workflows["nightly"]["status"]["conditions"][0]
        assert (ready["status"], ready["reason"]) == ("False", "InvalidCronSchedule")
        assert kube.posted[-1] == ("nightly", "Warning", "InvalidCronSchedule")

    run_async(scenario())


def test_a_deleted_cronjob_is_put_back() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        t = triggers(kube)
        t.store.observe_workflow(kube.add_workflow("nightly", crons=["0 0 * * *"]))
        await sync(t, "nightly")
        (body,) = kube.cronjobs.values()
        kube.cronjobs.clear()
        t.cron_synced.pop(("ns", "nightly"))  # what observe_cronjob(deleted=True) does
        await sync(t, "nightly")
        assert list(kube.cronjobs) == [body["metadata"]["name"]]

    run_async(scenario())


def test_without_trigger_image_or_when_refused_the_workflow_is_not_ready() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        t = triggers(kube, image=None)
        t.store.observe_workflow(kube.add_workflow("nightly", crons=["0 0 * * *"]))
        await sync(t, "nightly")
        assert kube.cronjobs == {}
        assert (
            kube.workflows["nightly"]["status"]["conditions"][0]["reason"] == "TriggerImageMissing"
        )
        # A misconfigured operator leaves the CronJobs of a configured one alone.
        configured = triggers(kube)
        configured.store.observe_workflow(copy.deepcopy(kube.workflows["nightly"]))
        await sync(configured, "nightly")
        assert len(kube.cronjobs) == 1
        t.cron_synced.clear()
        await sync(t, "nightly")
        assert len(kube.cronjobs) == 1
        kube = FakeKube()
        kube.reject_cronjobs = True
        t = triggers(kube)
        t.store.observe_workflow(kube.add_workflow("nightly", crons=["0 0 * * *"]))
        await sync(t, "nightly")
        assert kube.workflows["nightly"]["status"]["conditions"][0]["reason"] == "CronJobRejected"

    run_async(scenario())


def test_cron_runs_show_in_last_triggered() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        t = triggers(kube)
        t.store.observe_workflow(kube.add_workflow("nightly", crons=["0 0 * * *"]))
        await sync(t, "nightly")
        (cronjob,) = kube.cronjobs.values()
        cronjob["status"] = {
            "lastScheduleTime": "2026-06-01T00:00:00Z",
            "lastSuccessfulTime": "2026-06-01T00:00:05Z",
        }
        t.observe_cronjob(cronjob, deleted=False)
        await asyncio.sleep(0)  # the kicked sync runs
        await asyncio.sleep(0.01)
        last = kube.workflows["nightly"]["status"]["lastTriggered"]
        assert last == {"cron:0 0 * * *": f"{cronjob['metadata']['name']}-20260601-0000"}

    run_async(scenario())


# --- events -----------------------------------------------------------------------------------


def test_an_event_is_handled_once_even_when_replayed() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        kube.add_workflow("signup", events=["user:created"])
        kube.add_workflow("audit", events=["user:*"])
        body = kube.add_event("ev", "user:created", {"user": "ada"})
        t = triggers(kube)
        told: list[str] = []  # the runs' first passes start from the create's answer
        t.run_created = lambda run: told.append(run["metadata"]["name"])
        for name in ("signup", "audit"):
            t.store.observe_workflow(copy.deepcopy(kube.workflows[name]))
        t.events[("ns", "ev")] = body
        await t.handle_event(("ns", "ev"))
        assert sorted(r["spec"]["workflowRef"]["name"] for r in kube.runs.values()) == [
            "audit",
            "signup",
        ]
        assert sorted(told) == sorted(kube.runs)
        status = kube.events["ev"]["status"]
        assert sorted(status["runs"]) == sorted(kube.runs)
        assert kube.posted == [("ev", "Normal", "RunsCreated")]
        # Replayed by a restarted operator that never saw the status: no new run.
        again = triggers(kube)
        again.run_created = lambda run: told.append(run["metadata"]["name"])
        again.events[("ns", "ev")] = body
        await again.handle_event(("ns", "ev"))
        assert len(kube.runs) == 2 and kube.run_creates == 4 and len(told) == 2
        assert kube.events["ev"]["status"]["runs"] == status["runs"]
        again.expiry.cancel(("ns", "ev"))
        t.expiry.cancel(("ns", "ev"))
        await asyncio.sleep(0.01)  # the workflows' status syncs
        assert kube.workflows["audit"]["status"]["lastTriggered"] == {
            "event:user:*": next(n for n in kube.runs if n.startswith("audit-"))
        }

    run_async(scenario())


def test_handled_events_are_deleted_after_the_retention() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        body = kube.add_event("ev", "nobody:listens", {})
        t = triggers(kube, retention=0)
        t.observe_event(body, deleted=False)
        for _ in range(20):
            await asyncio.sleep(0.01)
            if "ev" not in kube.events:
                break
        assert kube.events == {}
        assert kube.runs == {}

    run_async(scenario())


def test_an_already_handled_event_only_arms_its_retention() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        body = kube.add_event("ev", "user:created", {})
        body["status"] = {"handledAt": "2026-01-01T00:00:00Z", "runs": []}
        t = triggers(kube, retention=3600)
        t.observe_event(body, deleted=False)
        assert ("ns", "ev") not in t.events
        await asyncio.sleep(0.01)  # handled long ago: due at once
        assert kube.events == {}

    run_async(scenario())


def test_a_failing_sync_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        calls = []

        async def work(key: Any) -> float | None:
            calls.append(key)
            if len(calls) == 1:
                raise RuntimeError("API down")
            return None

        worker = KeyedQueue("testing", work, retry_seconds=0.01)
        worker.kick(("ns", "x"))
        worker.kick(("ns", "x"))  # folds into one more pass
        await asyncio.sleep(0.1)
        assert len(calls) in (2, 3)

    run_async(scenario())


def test_settings_from_env() -> None:
    env = {
        "KUBEHATCH_TRIGGER_IMAGE": "op:2",
        "KUBEHATCH_TRIGGER_SERVICE_ACCOUNT": "sa",
        "KUBEHATCH_EVENT_RETENTION": "2h",
        "KUBEHATCH_STEP_RUN_AS_USER": "1000",
    }
    got = Settings.from_env(env)
    assert got.triggers == TriggerSettings(
        image="op:2", service_account="sa", event_retention=timedelta(hours=2)
    )
    assert got.steps.run_as_user == 1000
    default = Settings.from_env({})
    assert default.triggers.image is None
    assert default.triggers.event_retention == timedelta(hours=1)
    with pytest.raises(
        ValueError, match=r"KUBEHATCH_EVENT_RETENTION='one hour'.* is not a duration"
    ):
        Settings.from_env({"KUBEHATCH_EVENT_RETENTION": "one hour"})


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("KUBEHATCH_STEP_NODE_SELECTOR", '["pool"]', "not a JSON object of strings"),
        ("KUBEHATCH_STEP_NODE_SELECTOR", '{"pool": 1}', "not a JSON object of strings"),
        ("KUBEHATCH_STEP_NODE_SELECTOR", "pool=steps", "Expecting value"),
        ("KUBEHATCH_STEP_TOLERATIONS", '{"key": "k"}', "not a JSON list of objects"),
        ("KUBEHATCH_STEP_PRIORITY_CLASSES", '{"high": "urgent"}', "keys must be run priorities"),
    ],
)
def test_bad_step_placement_settings_name_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}=.* is not valid: {says}"):
        Settings.from_env({name: value})


def test_events_match_workflows_from_the_store_once_its_watch_has_passed_them() -> None:
    """A Workflow created before an event always matches it: while the Workflow watch has
    not delivered anything newer than the event, the API server's watch cache is read at
    the event's version; after that the store answers alone."""

    async def scenario() -> None:
        kube = FakeKube()
        body = kube.add_event("first", "user:created", {"user": "ada"})
        kube.add_workflow("signup", events=["user:created"])  # not yet seen by the watch
        t = triggers(kube)
        t.events[("ns", "first")] = body
        await t.handle_event(("ns", "first"))
        assert kube.workflow_lists == 1 and len(kube.runs) == 1
        seen = kube.add_workflow("audit", events=["user:*"])
        t.store.observe_workflow(seen)
        t.store.workflow_watch_at(seen)
        later = kube.add_event("second", "user:created", {"user": "bob"})
        older = dict(later, metadata={**later["metadata"], "resourceVersion": "1"})
        t.events[("ns", "second")] = older
        await t.handle_event(("ns", "second"))
        assert kube.workflow_lists == 1  # the store had passed it: no list
        assert sorted(r["spec"]["workflowRef"]["name"] for r in kube.runs.values()) == [
            "audit", "signup", "signup",
        ]  # fmt: skip
        for key in (("ns", "first"), ("ns", "second")):
            t.expiry.cancel(key)

    run_async(scenario())
