"""The local engine's forEach steps, steps that wait and steps that cancel themselves.

Their phases and messages are compared with the operator's in
tests/unit/operator/test_local_parity.py; here, what only the local engine does: the
items it runs and what they receive, the clock, the events and approvals it is given
(from Python and from ``kubehatch run --local``), and what ``run_workflow`` raises.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kubehatch import (
    Approval,
    Context,
    Fn,
    KubehatchError,
    PermanentError,
    Sleep,
    WaitForEvent,
    WaitUntil,
    Worker,
    WorkflowJob,
)
from kubehatch.cli import main
from kubehatch.cli._local import given
from kubehatch.errors import StepCancelledError, StepTimeoutError
from kubehatch.testing import FakeClock, StepEvent, run_local, run_workflow


def _worker(*steps: Fn[Any], **options: Any) -> Worker:
    worker = Worker("local", image="img:1")
    worker.register_workflow(WorkflowJob(name="wf", steps=list(steps), **options))
    return worker


def _square(ctx: Context) -> dict[str, Any]:
    if ctx.item == 3 and ctx.retry_count == 0:
        raise ValueError("three is shy")
    return {"i": ctx.item_index, "square": ctx.item * ctx.item}


def _odd_fails(ctx: Context) -> int:
    if ctx.item % 2:
        raise PermanentError(f"{ctx.item} is odd")
    return int(ctx.item)


# --- forEach -----------------------------------------------------------------------------


def test_a_for_each_step_runs_each_item_in_order_with_its_own_retries() -> None:
    clock, heard = FakeClock(), []
    step = Fn(_square).set_name("sq").set_for_each("input.xs").set_retries(1)
    after = Fn(lambda ctx: len(ctx.step_output("sq"))).set_name("count").add_parents(step)
    run = run_workflow(
        _worker(step, after), "wf", {"xs": [2, 3, 4]}, clock=clock, on_event=heard.append
    )
    assert run.outputs["sq"] == [
        {"i": 0, "square": 4},
        {"i": 1, "square": 9},
        {"i": 2, "square": 16},
    ]
    assert run.outputs["count"] == 3
    assert run.attempts["sq"] == 2  # item 1 took two
    assert clock.sleeps == [10]  # its backoff
    shown = [(e.step, e.phase, e.attempt) for e in heard if e.step.startswith("sq")]
    assert shown == [
        ("sq[0]", "Running", 1),
        ("sq[0]", "Succeeded", 1),
        ("sq[1]", "Running", 1),
        ("sq[1]", "Retrying", 1),
        ("sq[1]", "Running", 2),
        ("sq[1]", "Succeeded", 2),
        ("sq[2]", "Running", 1),
        ("sq[2]", "Succeeded", 1),
        ("sq", "Succeeded", 2),
    ]


def test_an_item_that_fails_fails_the_step_and_stops_the_items_after_it() -> None:
    seen: list[int] = []

    def odd_fails(ctx: Context) -> int:
        seen.append(ctx.item)
        return _odd_fails(ctx)

    step = Fn(odd_fails).set_name("each").set_for_each("[2, 4, 5, 6]")
    below = Fn(lambda ctx: 1).set_name("below").add_parents(step)
    run = run_local(_worker(step, below), "wf", clock=FakeClock())
    assert seen == [2, 4, 5]  # one after the other: 6 never runs
    assert run.phases == {"each": "Failed", "below": "Skipped"}
    message = "item 2 failed: PermanentError: 5 is odd (2 of 4 items succeeded)"
    assert run.messages["each"] == message
    assert run.message == f"step each failed: {message.removeprefix('failed: ')}"
    with pytest.raises(PermanentError, match="1 is odd") as raised:
        run_workflow(_worker(Fn(_odd_fails).set_name("e").set_for_each("[1]")), "wf")
    assert "in item 0 of the forEach step" in (raised.value.__notes__ or [])


def test_continue_on_item_failure_leaves_none_and_says_how_many_failed() -> None:
    step = (
        Fn(_odd_fails).set_name("each").set_for_each("[1, 2, 3, 4]", continue_on_item_failure=True)
    )
    run = run_workflow(_worker(step), "wf")
    assert run.outputs["each"] == [None, 2, None, 4]
    assert run.messages["each"] == "2 items succeeded; 2 of 4 items failed"


def test_an_empty_list_succeeds_with_no_output_and_no_list_fails() -> None:
    empty = Fn(_square).set_name("empty").set_for_each("input.xs")
    run = run_workflow(_worker(empty), "wf", {"xs": []})
    assert run.outputs["empty"] == [] and run.messages["empty"] == "forEach gave no items"
    run = run_local(
        _worker(Fn(_square).set_name("empty").set_for_each("input.xs")), "wf", {"xs": 3}
    )
    assert run.phases["empty"] == "Failed"
    assert run.messages["empty"] == "forEach 'input.xs' gave 3, not a list"


# --- waits -------------------------------------------------------------------------------


def test_sleep_and_wait_until_advance_the_clock() -> None:
    clock = FakeClock()
    nap = Sleep("1h").set_name("nap")
    until = WaitUntil("input.at").set_name("until").add_parents(nap)
    run = run_workflow(_worker(nap, until), "wf", {"at": "2030-01-01T03:00:00Z"}, clock=clock)
    assert clock.sleeps == [3600, 7200]
    assert run.outputs == {
        "nap": {"sleptUntil": "2030-01-01T01:00:00Z"},
        "until": {"waitedUntil": "2030-01-01T03:00:00Z"},
    }


def test_a_run_timeout_stops_a_wait() -> None:
    clock = FakeClock()
    run = run_local(_worker(Sleep("1h").set_name("nap"), timeout="10m"), "wf", clock=clock)
    assert clock.sleeps == [600]
    assert run.phase == "TimedOut" and run.phases == {"nap": "TimedOut"}
    assert run.messages["nap"] == run.message == "the run exceeded its timeout of 10m"


def test_wait_for_event_takes_the_first_given_event_that_matches() -> None:
    paid = WaitForEvent("order:*", filter="event.data.id == input.id").set_name("paid")
    got = Fn(lambda ctx: ctx.step_output("paid")["data"]["amount"]).set_name("got")
    events = [
        ("order:paid", {"id": 2, "amount": 5}),
        ("user:new", {"id": 1}),
        ("order:paid", {"id": 1, "amount": 9}, {"source": "web"}),
    ]
    run = run_workflow(_worker(paid, got.add_parents(paid)), "wf", {"id": 1}, events=events)
    assert run.outputs["paid"] == {
        "key": "order:paid",
        "data": {"id": 1, "amount": 9},
        "metadata": {"source": "web"},
        "event": "local-event-3",
    }
    assert run.outputs["got"] == 9


def test_an_event_given_a_later_time_is_waited_for_within_the_timeout() -> None:
    clock = FakeClock()
    wait = WaitForEvent("ping", timeout="1h").set_name("ping")
    late = [("ping", {}, {}, clock.now() + timedelta(minutes=20))]
    run = run_workflow(_worker(wait), "wf", events=late, clock=clock)
    assert clock.sleeps == [1200] and run.outputs["ping"]["event"] == "local-event-1"
    too_late = [("ping", {}, {}, clock.now() + timedelta(hours=2))]
    run = run_local(_worker(WaitForEvent("ping", timeout="1h").set_name("p")), "wf",
                    events=too_late, clock=clock)  # fmt: skip
    assert run.phases["p"] == "TimedOut"
    assert run.messages["p"] == "waiting for an event 'ping': nothing came within its timeout of 1h"


def test_no_event_follows_the_timeout_rule_or_fails_saying_what_to_pass() -> None:
    clock = FakeClock()
    go_on = WaitForEvent("x", timeout="5m", on_timeout="Continue").set_name("go-on")
    run = run_workflow(_worker(go_on), "wf", clock=clock)
    assert run.outputs["go-on"] == {"timedOut": True} and clock.sleeps == [300]
    with pytest.raises(StepTimeoutError, match="nothing came within its timeout of 5m"):
        run_workflow(_worker(WaitForEvent("x", timeout="5m").set_name("fail")), "wf")
    run = run_local(_worker(WaitForEvent("order:paid").set_name("forever")), "wf")
    assert run.phases["forever"] == "Failed"
    assert "the local engine has no such event" in run.messages["forever"]
    assert "events=[('order:paid', {...})]" in run.messages["forever"]
    assert "--event 'order:paid={...}'" in run.messages["forever"]


def test_approvals_are_given_by_step_and_answered_by_local() -> None:
    ask = Approval("ship?").set_name("ask")
    ship = Fn(lambda ctx: ctx.step_output("ask")["approved"]).set_name("ship").add_parents(ask)
    run = run_workflow(_worker(ask, ship), "wf", approvals={"ask": True})
    assert run.outputs["ask"] == {
        "approved": True,
        "approver": "local",
        "comment": None,
        "at": "2030-01-01T00:00:00Z",
    }
    assert run.messages["ask"] == "approved by local" and run.outputs["ship"] is True
    run = run_local(_worker(Approval().set_name("ask")), "wf", approvals={"ask": (False, "no")})
    assert run.phases["ask"] == "Failed" and run.messages["ask"] == "rejected by local: no"
    run = run_local(_worker(Approval().set_name("ask")), "wf")
    assert "--approve ask or --reject ask" in run.messages["ask"]
    with pytest.raises(KubehatchError, match="has no approval step of that name"):
        run_local(_worker(Approval().set_name("ask")), "wf", approvals={"typo": True})
    with pytest.raises(KubehatchError, match="give \\(key, data\\)"):
        run_local(_worker(Approval().set_name("ask")), "wf", events=["order:paid"])


# --- a step that cancels itself ----------------------------------------------------------


def _cancels(ctx: Context) -> None:
    ctx.cancel()
    raise RuntimeError("stopping")  # raising after ctx.cancel() is still a cancellation


def test_a_step_that_cancels_itself_is_cancelled_not_retried_and_cancels_the_run() -> None:
    stop = Fn(_cancels).set_name("stop").set_retries(3)
    below = Fn(lambda ctx: 1).set_name("below").add_parents(stop)
    other = Fn(lambda ctx: 2).set_name("other")
    done = Fn(lambda ctx: 3).set_name("done")
    worker = _worker(stop, below, other, on_success=Fn(lambda ctx: 0).set_name("yay"),
                     on_exit=done)  # fmt: skip
    run = run_local(worker, "wf", clock=FakeClock())
    assert run.attempts["stop"] == 1
    assert run.phases == {
        "stop": "Cancelled",
        "below": "Skipped",
        "other": "Succeeded",
        "yay": "Skipped",
        "done": "Succeeded",
    }
    assert run.messages["below"] == "not run: parent stop cancelled"
    assert run.messages["yay"] == "not run: a step was cancelled"
    assert run.phase == "Cancelled"
    assert run.message == "step stop was cancelled: cancelled by the step itself (ctx.cancel())"
    with pytest.raises(StepCancelledError, match="step stop was cancelled"):
        run_workflow(_worker(Fn(_cancels).set_name("stop")), "wf")


def test_a_timeout_is_not_a_cancellation_by_the_step() -> None:
    def slow(ctx: Context) -> None:
        ctx.wait_for_cancel(5)

    run = run_local(_worker(Fn(slow).set_name("slow").set_timeout("1s")), "wf")
    assert run.phases == {"slow": "TimedOut"} and run.phase == "Failed"


# --- kubehatch run --local ----------------------------------------------------------------

WORKER_MODULE = """
from kubehatch import Approval, Fn, WaitForEvent, Worker, WorkflowJob

paid = WaitForEvent("order:paid").set_name("paid")
ask = Approval().set_name("ask").add_parents(paid)
each = Fn(lambda ctx: ctx.item * 2).set_name("each").set_for_each("parents.paid.data.xs")
each.add_parents(paid)
worker = Worker("w", image="img:1")
worker.register_workflow(WorkflowJob(name="shop", steps=[paid, ask, each]))
"""


def test_run_local_takes_events_and_answers_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "shopworker.py").write_text(WORKER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    base = ["run", "shop", "--local", "-w", "shopworker:worker"]
    assert main([*base, "--event", 'order:paid={"xs": [1, 2]}', "--approve", "ask=fine"]) == 0
    out = capsys.readouterr().out
    assert "each[1]" in out and "approved by local: fine" not in out  # only failures say why
    assert "local run of shop Succeeded (3/3 steps succeeded)" in out
    assert main([*base, "--event", 'order:paid={"xs": []}', "--reject", "ask=no"]) == 1
    assert "step ask failed: rejected by local: no" in capsys.readouterr().err
    assert main(["run", "shop", "--event", "order:paid={}"]) == 1
    assert "are for --local runs" in capsys.readouterr().err


def test_the_command_line_options_become_events_and_answers() -> None:
    events, answers = given(['a:b={"x": 1}'], ["one", "two=ok"], ["three=no"])
    assert events == [("a:b", {"x": 1})]
    assert answers == {"one": True, "two": (True, "ok"), "three": (False, "no")}
    with pytest.raises(KubehatchError, match="write KEY=JSON"):
        given(["a:b"], [], [])
    with pytest.raises(KubehatchError, match="answered twice"):
        given([], ["one"], ["one"])


def test_every_step_event_names_its_item() -> None:
    heard: list[StepEvent] = []
    step = Fn(_odd_fails).set_name("e").set_for_each("[2]")
    run_workflow(_worker(step), "wf", on_event=heard.append)
    assert [e.step for e in heard] == ["e[0]", "e[0]", "e"]
