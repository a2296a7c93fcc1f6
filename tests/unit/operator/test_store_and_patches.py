"""Reading Jobs into attempts, the store's bookkeeping, and merge patches."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from kubehatch_operator.entries import attempt_from_job
from kubehatch_operator.model import AttemptState
from kubehatch_operator.patches import merge_patch
from kubehatch_operator.relisting import relist
from kubehatch_operator.store import Store


def job_body(status: dict | None = None, run: str = "r1", rv: str = "5") -> dict:
    return {
        "metadata": {
            "name": "r1-a-2",
            "namespace": "ns",
            "resourceVersion": rv,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kubehatch.dev/step": "a", "kubehatch.dev/attempt": "2"},
            "ownerReferences": [
                {
                    "apiVersion": "kubehatch.dev/v1alpha1",
                    "kind": "WorkflowRun",
                    "name": run,
                    "uid": "r1-uid",
                }
            ],
        },
        "status": status or {},
    }


def cond(type_: str, reason: str = "", at: str = "2026-01-01T00:00:09Z") -> dict:
    return {"type": type_, "status": "True", "reason": reason, "lastTransitionTime": at}


def test_new_job_is_an_active_attempt() -> None:
    attempt = attempt_from_job(job_body())
    assert attempt is not None
    assert (attempt.step, attempt.attempt, attempt.job_name) == ("a", 2, "r1-a-2")
    assert attempt.state is AttemptState.ACTIVE
    assert attempt.started_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_success_is_seen_at_the_first_signal() -> None:
    early = attempt_from_job(job_body({"conditions": [cond("SuccessCriteriaMet")]}))
    assert early is not None and early.state is AttemptState.SUCCEEDED
    counted = attempt_from_job(job_body({"succeeded": 1, "completionTime": "2026-01-01T00:00:05Z"}))
    assert counted is not None and counted.state is AttemptState.SUCCEEDED
    assert counted.finished_at == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)


def test_failure_and_deadline() -> None:
    failed = attempt_from_job(job_body({"conditions": [cond("FailureTarget", "PodFailurePolicy")]}))
    assert failed is not None and failed.state is AttemptState.FAILED and not failed.timed_out
    late = attempt_from_job(job_body({"conditions": [cond("Failed", "DeadlineExceeded")]}))
    assert late is not None and late.timed_out
    assert late.finished_at == datetime(2026, 1, 1, 0, 0, 9, tzinfo=UTC)


def test_conditions_that_are_false_do_not_count() -> None:
    body = job_body({"conditions": [{"type": "Failed", "status": "False"}]})
    attempt = attempt_from_job(body)
    assert attempt is not None and attempt.state is AttemptState.ACTIVE


def test_jobs_without_our_labels_are_ignored() -> None:
    body = job_body()
    body["metadata"]["labels"] = {}
    assert attempt_from_job(body) is None
    assert Store().observe_job(body) is None


def run_body(phase: str | None = None, rv: str = "1") -> dict:
    return {
        "metadata": {"name": "r1", "namespace": "ns", "resourceVersion": rv, "uid": "r1-uid"},
        "spec": {"workflowRef": {"name": "wf"}},
        "status": {"phase": phase} if phase else {},
    }


def test_store_keeps_unfinished_runs_and_drops_finished_ones() -> None:
    store = Store()
    key = store.observe_run(run_body("Running"))
    store.observe_job(job_body())
    uid = store.runs[key].uid
    assert "r1-a-2" in store.attempts[uid]
    store.observe_job(job_body({"succeeded": 1, "conditions": [cond("Complete")]}, rv="6"))
    store.observe_run(run_body("Succeeded", rv="2"))
    assert key not in store.runs and uid not in store.attempts and key in store.finished
    # Late Job events of a finished run are not tracked again.
    assert store.observe_job(job_body()) is None


def test_a_run_finished_while_its_pod_stops_holds_its_slot_until_the_pod_is_gone() -> None:
    """Its last step's output finishes the run at once; the slot frees when the Job says
    the pod has stopped, so two runs of a limit of one never have pods running together."""
    left: list[str] = []
    store = Store(on_leave=lambda entry: left.append(entry.key[1]))
    key = store.observe_run(run_body("Running"))
    store.observe_job(job_body({"active": 1, "ready": 1}))
    store.observe_output(output_meta())
    store.observe_run(run_body("Succeeded", rv="2"))
    assert key not in store.runs and key in store.finished
    assert [e.key for e in store.contending(("ns", "wf"))] == [key] and left == []
    store.observe_job(job_body({"active": 1, "ready": 0}, rv="6"))  # still on its way out
    assert left == [] and store.lingering
    store.observe_job(job_body({"succeeded": 1, "conditions": [cond("Complete")]}, rv="7"))
    assert left == ["r1"] and not store.lingering and "r1-uid" not in store.attempts
    assert store.contending(("ns", "wf")) == []


def test_after_a_restart_a_finished_run_whose_pod_still_stops_holds_its_slot() -> None:
    """The listing of unfinished runs lacks a run that finished while its last pod was
    stopping; its live Job is an orphan, and the run, read back, lingers until it stops."""
    from kubehatch_operator.relisting import Relisting

    left: list[str] = []
    store = Store(on_leave=lambda entry: left.append(entry.key[1]))
    relisting = Relisting(store, finished=False)
    relisting.jobs([job_body({"active": 1, "ready": 1})])
    assert list(relisting.orphans) == ["r1-uid"] and store.contending(("ns", "wf")) == []
    store.linger(run_body("Succeeded", rv="2"), relisting.orphans["r1-uid"])
    assert [e.key for e in store.contending(("ns", "wf"))] == [("ns", "r1")]
    store.observe_job(job_body({"succeeded": 1, "conditions": [cond("Complete")]}, rv="7"))
    assert left == ["r1"] and store.contending(("ns", "wf")) == []
    # A finished Job is no orphan: its run holds nothing.
    again = Relisting(Store(), finished=False)
    again.jobs([job_body({"succeeded": 1, "conditions": [cond("Complete")]})])
    assert not again.orphans


def test_store_ignores_watch_events_older_than_its_own_write() -> None:
    store = Store()
    key = store.observe_run(run_body("Running", rv="10"))
    store.observe_run(run_body(None, rv="9"))
    assert store.runs[key].body["status"]["phase"] == "Running"


def test_invalid_workflow_is_kept_as_a_message_and_waiting_runs_are_found() -> None:
    store = Store()
    store.observe_run(run_body())
    wf = {"metadata": {"name": "wf", "namespace": "ns"}, "spec": {"steps": []}}
    key = store.observe_workflow(wf)
    problem = store.workflows[key].for_decisions
    assert isinstance(problem, str) and "steps" in problem
    assert store.runs_waiting_for(key) == [("ns", "r1")]


def test_merge_patch_sends_changes_and_nulls_for_removed_keys() -> None:
    old = {
        "phase": "Running",
        "steps": {"a": {"phase": "Retrying", "message": "x"}, "b": {"phase": "Pending"}},
    }
    new = {"phase": "Running", "steps": {"a": {"phase": "Running"}, "b": {"phase": "Pending"}}}
    assert merge_patch(old, new) == {"steps": {"a": {"phase": "Running", "message": None}}}
    assert merge_patch(new, new) == {}
    assert merge_patch({}, {"conditions": [1]}) == {"conditions": [1]}


def test_a_late_event_never_brings_a_finished_run_back() -> None:
    store = Store()
    key = store.observe_run(run_body("Running", rv="10"))
    store.observe_run(run_body("Cancelled", rv="12"))
    store.observe_run(run_body("Running", rv="11"))  # delivered after our own write
    assert key not in store.runs and key in store.finished


def test_job_deletions_after_a_run_is_forgotten_leave_nothing_behind() -> None:
    store = Store()
    key = store.observe_run(run_body("Running"))
    store.observe_run(run_body(), deleted=True)
    store.observe_job(job_body(), deleted=True)
    assert key not in store.attempts


def test_a_relisting_drops_what_went_while_the_watch_was_down() -> None:
    """A re-list after 410 Gone sends no DELETED events: the listing tells what went."""
    store = Store()
    gone = store.observe_run(run_body("Running", rv="5"))
    store.observe_job(job_body(rv="6"))
    newer = run_body(rv="50")
    newer["metadata"] = {**newer["metadata"], "name": "r9", "uid": "r9-uid"}
    store.observe_run(newer)  # created after the listing was taken: kept
    uid = store.runs[gone].uid
    left, _ = relist(store, runs=[], jobs=[], version=20)
    assert [entry.key for entry in left] == [gone]
    assert gone not in store.runs and ("ns", "r9") in store.runs
    assert store.attempts.get(uid, {}) == {}


def test_a_relisting_drops_jobs_that_went_but_keeps_the_ones_just_created() -> None:
    store = Store()
    key = store.observe_run(run_body("Running", rv="5"))
    store.observe_job(job_body(rv="6"))
    entry = store.runs[key]
    fresh = attempt_from_job({**job_body(), "metadata": {**job_body()["metadata"], "name": "j2"}})
    assert fresh is not None
    store.note_created(entry, dataclasses.replace(fresh, resource_version=0))
    relist(store, runs=[entry.body], jobs=[], version=20)
    assert list(store.attempts_of(entry)) == ["j2"]


def output_meta(name: str = "r1-a-2-output", owner: bool = True) -> dict:
    meta = job_body()["metadata"]
    return {
        "name": name,
        "namespace": "ns",
        "creationTimestamp": "2026-01-01T00:00:03Z",
        "labels": meta["labels"],
        "ownerReferences": meta["ownerReferences"] if owner else [],
    }


def test_a_steps_output_is_its_success_before_the_job_says_so() -> None:
    """The pod writes its output as its last act; the Job's condition comes seconds later."""
    store = Store()
    store.observe_run(run_body("Running", rv="4"))
    store.observe_job(job_body({"active": 1, "ready": 1}, rv="5"))
    assert store.observe_output(output_meta()) == ("ns", "r1")
    (attempt,) = store.attempts["r1-uid"].values()
    assert attempt.state is AttemptState.SUCCEEDED and attempt.started
    assert attempt.finished_at == datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)
    assert ("r1-uid", "a") in store.succeeded_at
    # The Job, still running (its pod on its way out) or even failing after the step's
    # code returned, never takes the success back; its own success is recorded.
    for later in ({"active": 1, "ready": 0}, {"failed": 1, "conditions": [cond("Failed")]}):
        store.observe_job(job_body(later, rv="6"))
        assert store.attempts["r1-uid"]["r1-a-2"].state is AttemptState.SUCCEEDED
    store.observe_job(job_body({"succeeded": 1, "completionTime": "2026-01-01T00:00:05Z"}, rv="7"))
    done = store.attempts["r1-uid"]["r1-a-2"]
    assert done.state is AttemptState.SUCCEEDED and done.resource_version == 7


def test_outputs_that_match_no_known_attempt_change_nothing() -> None:
    store = Store()
    store.observe_run(run_body("Running", rv="4"))
    assert store.observe_output(output_meta()) is None  # its Job is unknown: the Job tells
    assert "r1-uid" not in store.attempts or not store.attempts["r1-uid"]
    store.observe_job(job_body({"active": 1}, rv="5"))
    assert store.observe_output(output_meta(owner=False)) is None
    assert store.observe_output(output_meta(name="r1-a-2-input")) is None
    assert store.observe_output(output_meta(name="r1-a-1-output")) is None
    assert store.attempts["r1-uid"]["r1-a-2"].state is AttemptState.ACTIVE


def test_jobs_of_runs_the_store_does_not_follow_are_not_kept() -> None:
    """Finished runs' Jobs (listed at start-up, or late events) cost no memory."""
    store = Store()
    assert store.observe_job(job_body({"succeeded": 1}, rv="5")) is None
    assert not store.attempts.get("r1-uid")
    store.observe_run(run_body("Running", rv="6"))
    assert store.observe_job(job_body({"active": 1}, rv="7")) == ("ns", "r1")


def test_the_key_actions_pod_holds_no_slot() -> None:
    """It runs before admission: while it stops (its output already read) the run has not
    started, and must not count as running."""
    store = Store()
    key = store.observe_run(run_body())
    body = job_body({"active": 1, "ready": 1})
    body["metadata"]["labels"]["kubehatch.dev/step"] = "concurrency.key"
    store.observe_job(body)
    assert not store.live_jobs(store.runs[key])
    store.observe_job(job_body({"active": 1, "ready": 1}, rv="6"))
    assert store.live_jobs(store.runs[key])


def test_a_finished_run_is_kept_as_a_name_and_a_time_without_being_parsed() -> None:
    store = Store()
    done = run_body("Succeeded", rv="9")
    done["spec"] = {"workflowRef": "not an object"}  # would not parse: never needs to
    done["status"]["finishedAt"] = "2026-01-01T00:00:07Z"
    key = store.observe_run(done)
    assert key not in store.runs
    (finished,) = store.finished_runs_of(("ns", ""))
    assert (finished.name, finished.version) == ("r1", 9)
    assert finished.finished_at == datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
