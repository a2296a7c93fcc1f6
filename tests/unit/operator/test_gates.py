"""Concurrency verdicts from run bodies, and what decide does with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubehatch.api.workflow import ConcurrencySpec, WorkflowSpec
from kubehatch.api.workflowrun import WorkflowRunPhase, WorkflowRunSpec, WorkflowRunStatus
from kubehatch_operator import gates
from kubehatch_operator.admission import Admission
from kubehatch_operator.decisions import decide
from kubehatch_operator.entries import RunEntry
from kubehatch_operator.model import Attempt, AttemptState, Gate, Run, Verdict

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PER_USER = ConcurrencySpec.model_validate(
    {"expression": "input.user_id", "maxRuns": 1, "limitStrategy": "QueueNewest"}
)


SNAPSHOT = {"image": "i:1", "service": "s", "steps": [{"name": "a", "action": "a"}]}


def gate(
    name: str,
    runs: list[dict],
    limit: ConcurrencySpec,
    now: datetime,
    holding: frozenset[tuple[str, str]] = frozenset(),
    served: str | None = None,
) -> tuple[Gate, Admission]:
    """The verdict over run bodies, parsed the way the store parses them."""
    spec = WorkflowSpec.model_validate({**SNAPSHOT, "concurrency": limit.to_dict()})
    entries = [RunEntry.parse(b) for b in runs]
    return gates.gate(name, entries, spec, now, holding, served=served)


def body(name: str, user: object, *, at: int, started: bool = False, **spec: object) -> dict:
    status = {"workflowSpec": SNAPSHOT, "phase": "Running"} if started else {}
    created = (T0 + timedelta(seconds=at)).isoformat()
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
        "spec": {"workflowRef": {"name": "wf"}, "input": {"user_id": user}, **spec},
        "status": status,
    }


def test_second_run_of_a_user_queues_while_another_user_starts() -> None:
    runs = [body("a1", "ada", at=0, started=True), body("a2", "ada", at=1), body("b1", "bob", at=2)]
    verdict, admission = gate("a2", runs, PER_USER, T0)
    assert (verdict.verdict, verdict.key) == (Verdict.QUEUE, "ada")
    assert "key 'ada'" in verdict.message
    assert gate("b1", runs, PER_USER, T0)[0].verdict is Verdict.START
    # Per key, a run's pass weighs its own key's runs only: bob's start is bob's own pass.
    assert admission.start == [] and admission.queue == ["a2"]


def test_known_keys_are_not_recomputed() -> None:
    runs = [body("a1", "ada", at=0, started=True)]
    runs[0]["status"]["concurrencyKey"] = "cached"
    runs.append(body("a2", "cached", at=1))
    assert gate("a2", runs, PER_USER, T0)[0].verdict is Verdict.QUEUE


def test_runs_scheduled_for_later_do_not_hold_slots() -> None:
    later = (T0 + timedelta(hours=1)).isoformat()
    runs = [body("future", "ada", at=0, scheduledAt=later), body("now", "ada", at=1)]
    assert gate("now", runs, PER_USER, T0)[0].verdict is Verdict.START


def test_expression_errors_fail_only_that_run() -> None:
    runs = [{**body("bad", None, at=0), "spec": {"workflowRef": {"name": "wf"}, "input": {}}}]
    runs.append(body("good", "ada", at=1))
    verdict, _ = gate("bad", runs, PER_USER, T0)
    assert verdict.verdict is Verdict.FAIL and "input.user_id" in verdict.message
    assert gate("good", runs, PER_USER, T0)[0].verdict is Verdict.START


def test_cancel_in_progress_names_the_run_to_stop() -> None:
    limit = ConcurrencySpec.model_validate({"expression": "input.user_id", "maxRuns": 1})
    runs = [body("old", "ada", at=0, started=True), body("new", "ada", at=1)]
    verdict, admission = gate("new", runs, limit, T0)
    assert verdict.verdict is Verdict.START and admission.cancel == ["old"]


SPEC = WorkflowSpec.model_validate(
    {"image": "i:1", "service": "s", "steps": [{"name": "a", "action": "a"}]}
)


def new_run() -> Run:
    spec = WorkflowRunSpec.model_validate({"workflowRef": {"name": "wf"}})
    return Run("r1", 1, spec, WorkflowRunStatus())


def test_decide_queues_with_the_key_and_reason() -> None:
    decision = decide(new_run(), SPEC, [], T0, Gate(Verdict.QUEUE, "ada", "waiting for a slot"))
    status = decision.status
    assert status.phase is WorkflowRunPhase.QUEUED
    assert status.concurrency_key == "ada"
    assert status.workflow_spec is None and decision.start == []
    assert (status.conditions[0].reason, status.conditions[0].message) == (
        "Queued",
        "waiting for a slot",
    )


def test_decide_starts_when_admitted_and_records_the_key() -> None:
    decision = decide(new_run(), SPEC, [], T0, Gate(Verdict.START, "ada"))
    assert decision.status.phase is WorkflowRunPhase.RUNNING
    assert decision.status.concurrency_key == "ada"
    assert [s.step.name for s in decision.start] == ["a"]


def test_decide_cancels_a_waiting_run_over_the_limit() -> None:
    decision = decide(new_run(), SPEC, [], T0, Gate(Verdict.CANCEL, "ada", "over the limit"))
    assert decision.status.phase is WorkflowRunPhase.CANCELLED
    assert decision.status.conditions[0].reason == "ConcurrencyLimit"
    assert decision.start == []


def test_decide_stops_a_running_run_the_limit_cancelled() -> None:
    started = decide(new_run(), SPEC, [], T0, Gate(Verdict.START, "ada"))
    run = Run("r1", 1, new_run().spec, started.status)
    active = [Attempt("a", 1, "r1-a-1", AttemptState.ACTIVE)]
    decision = decide(
        run, SPEC, active, T0, Gate(Verdict.CANCEL, None, "a newer run took its slot")
    )
    assert decision.status.phase is WorkflowRunPhase.CANCELLED
    assert decision.stop_jobs == ["r1-a-1"]


def test_key_evaluation_failure_fails_the_run() -> None:
    decision = decide(new_run(), SPEC, [], T0, Gate(Verdict.FAIL, None, "no field user_id"))
    assert decision.status.phase is WorkflowRunPhase.FAILED
    assert decision.status.conditions[0].reason == "ConcurrencyKeyFailed"


def test_runs_whose_key_action_has_not_answered_do_not_contend() -> None:
    by_action = ConcurrencySpec.model_validate({"action": "svc:user-key", "maxRuns": 1})
    runs = [body("computing", "ada", at=0), body("known", "ada", at=1)]
    runs[1]["status"] = {"concurrencyKey": "ada"}
    verdict, admission = gate("known", runs, by_action, T0)
    assert verdict.verdict is Verdict.START and admission.start == ["known"]


def test_a_started_run_learns_on_its_own_pass_that_a_newer_run_superseded_it() -> None:
    # What a restarted operator recomputes: no memory of the newer run's admission needed.
    limit = ConcurrencySpec.model_validate({"expression": "input.user_id", "maxRuns": 1})
    runs = [body("old", "ada", at=0, started=True), body("new", "ada", at=1)]
    runs[0]["status"]["concurrencyKey"] = "ada"
    verdict, _ = gate("old", runs, limit, T0)
    assert verdict.verdict is Verdict.CANCEL and "CancelInProgress" in verdict.message
    alone, _ = gate("old", runs[:1], limit, T0)
    assert alone.verdict is Verdict.START


def limit_of(**fields: object) -> ConcurrencySpec:
    return ConcurrencySpec.model_validate({"expression": "input.user_id", **fields})


def test_a_queued_run_says_its_place_and_who_holds_the_slots() -> None:
    limit = limit_of(maxRuns=1, limitStrategy="QueueNewest")
    runs = [body("a1", "ada", at=0, started=True), body("a2", "ada", at=1), body("a3", "ada", at=2)]
    verdict, _ = gate("a3", runs, limit, T0)
    assert verdict.verdict is Verdict.QUEUE and verdict.reason == "Queued"
    assert "key 'ada', number 2 of 2 in the queue" in verdict.message
    assert "slots held by a1" in verdict.message and "QueueNewest" in verdict.message


def test_queue_timeout_cancels_a_run_that_waited_too_long_and_wakes_it_on_time() -> None:
    limit = limit_of(maxRuns=1, limitStrategy="QueueNewest", queueTimeout="5m")
    runs = [body("a1", "ada", at=0, started=True), body("a2", "ada", at=10)]
    waiting, _ = gate("a2", runs, limit, T0 + timedelta(minutes=4))
    assert waiting.verdict is Verdict.QUEUE
    assert waiting.wake_at == T0 + timedelta(seconds=10, minutes=5)
    late, _ = gate("a2", runs, limit, T0 + timedelta(minutes=5, seconds=10))
    assert (late.verdict, late.reason) == (Verdict.CANCEL, "QueueTimeout")
    assert "queueTimeout (5m)" in late.message


def test_the_queue_timeout_counts_from_scheduled_at() -> None:
    limit = limit_of(maxRuns=1, limitStrategy="QueueNewest", queueTimeout="1m")
    later = (T0 + timedelta(hours=1)).isoformat()
    runs = [body("a1", "ada", at=0, started=True), body("a2", "ada", at=1, scheduledAt=later)]
    verdict, _ = gate("a2", runs, limit, T0 + timedelta(hours=1, seconds=30))
    assert verdict.verdict is Verdict.QUEUE


def test_a_dynamic_limit_comes_from_the_input_and_is_recorded() -> None:
    limit = limit_of(
        maxRunsExpression="input.tier == 'premium' ? 2 : 1", limitStrategy="QueueNewest"
    )
    premium = [
        body(
            "p1",
            "ada",
            at=0,
            started=True,
        ),
        body("p2", "ada", at=1),
    ]
    for run in premium:
        run["spec"]["input"]["tier"] = "premium"
    verdict, _ = gate("p2", premium, limit, T0)
    assert (verdict.verdict, verdict.limit) == (Verdict.START, 2)
    basic = [body("b1", "bob", at=0, started=True), body("b2", "bob", at=1)]
    for run in basic:
        run["spec"]["input"]["tier"] = "basic"
    verdict, _ = gate("b2", basic, limit, T0)
    assert (verdict.verdict, verdict.limit) == (Verdict.QUEUE, 1)
    assert "1 run(s) per key" in verdict.message


def test_a_dynamic_limit_that_is_no_number_fails_the_run_saying_so() -> None:
    limit = limit_of(maxRunsExpression="input.tier", limitStrategy="QueueNewest")
    runs = [body("a1", "ada", at=0)]
    runs[0]["spec"]["input"]["tier"] = "gold"
    verdict, _ = gate("a1", runs, limit, T0)
    assert verdict.verdict is Verdict.FAIL
    assert "maxRunsExpression 'input.tier' gave 'gold'" in verdict.message


def test_additional_metadata_is_readable_by_the_key() -> None:
    limit = ConcurrencySpec.model_validate(
        {"expression": "additional_metadata.tenant", "limitStrategy": "QueueNewest"}
    )
    runs = [body("a1", "ada", at=0, additionalMetadata={"tenant": "acme"})]
    verdict, _ = gate("a1", runs, limit, T0)
    assert (verdict.verdict, verdict.key) == (Verdict.START, "acme")


def test_debounce_cancels_the_older_queued_run_saying_why() -> None:
    limit = limit_of(limitStrategy="CancelQueuedExceptNewest")
    runs = [body("a1", "ada", at=0, started=True), body("a2", "ada", at=1), body("a3", "ada", at=2)]
    verdict, admission = gate("a2", runs, limit, T0)
    assert (verdict.verdict, verdict.reason) == (Verdict.CANCEL, "ConcurrencyLimit")
    assert "only the newest queued run is kept" in verdict.message
    assert admission.queue == ["a3"]


def test_a_run_handed_a_slot_starts_on_its_own_pass_whatever_the_turns() -> None:
    limit = limit_of(maxRunsTotal=1, limitStrategy="GroupRoundRobin")
    runs = [body("a1", "ada", at=0), body("b1", "bob", at=1)]
    handed = frozenset({("ns", "b1")})
    verdict, _ = gate("b1", runs, limit, T0, holding=handed)
    assert verdict.verdict is Verdict.START
    # ...and meanwhile it holds the only slot: nobody else starts.
    other, _ = gate("a1", runs, limit, T0, holding=handed)
    assert other.verdict is Verdict.QUEUE and "slots held by b1" in other.message


def test_round_robin_with_a_total_weighs_every_key_and_goes_on_after_the_key_served() -> None:
    limit = limit_of(maxRunsTotal=1, limitStrategy="GroupRoundRobin")
    runs = [body("a2", "ada", at=0), body("b2", "bob", at=1), body("c2", "cy", at=2)]
    assert gate("a2", runs, limit, T0, served="ada")[1].start == ["b2"]
    assert gate("a2", runs, limit, T0, served="bob")[1].start == ["c2"]
    assert gate("a2", runs, limit, T0, served="cy")[1].start == ["a2"]


def test_priority_orders_the_queue_of_a_key() -> None:
    limit = limit_of(maxRuns=1, limitStrategy="QueueNewest")
    runs = [
        body("a1", "ada", at=0, started=True),
        body("low", "ada", at=1),
        body("high", "ada", at=2, priority=3),
    ]
    verdict, admission = gate("low", runs, limit, T0)
    assert admission.queue == ["high", "low"]
    assert "number 2 of 2" in verdict.message


def test_a_started_run_with_live_jobs_is_still_pushed_out_by_a_newer_run() -> None:
    limit = ConcurrencySpec.model_validate({"expression": "input.user_id", "maxRuns": 1})
    runs = [body("old", "ada", at=0, started=True), body("new", "ada", at=1)]
    runs[0]["status"]["concurrencyKey"] = "ada"
    live = frozenset({("ns", "old")})  # its step Job still runs
    verdict, _ = gate("old", runs, limit, T0, holding=live)
    assert verdict.verdict is Verdict.CANCEL


def test_a_queued_run_names_its_keys_limit_as_the_newest_run_set_it() -> None:
    limit = limit_of(maxRunsExpression="input.n", limitStrategy="QueueNewest")
    runs = [body("a1", "ada", at=0, started=True), body("a2", "ada", at=1), body("a3", "ada", at=2)]
    runs[0]["status"].update({"concurrencyKey": "ada", "concurrencyLimit": 1})
    for run, n in zip(runs, (1, 10, 1), strict=True):
        run["spec"]["input"]["n"] = n
    verdict, _ = gate("a2", runs, limit, T0)  # its own limit says 10; the newest says 1
    assert verdict.verdict is Verdict.QUEUE and verdict.limit == 10
    assert "1 run(s) per key" in verdict.message
