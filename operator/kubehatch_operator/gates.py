"""From the runs the store holds to a concurrency verdict for one run.

Reads typed run entries (parsed once by the store), computes each run's key (CEL over
its input, kept in status.concurrencyKey once known) and asks `admission.admit` who
may start. No API calls: the reconciler applies the verdicts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from kubehatch.api.cel import concurrency_key
from kubehatch.api.workflow import ConcurrencySpec, LimitStrategy
from kubehatch_operator.admission import Admission, Contender, admit
from kubehatch_operator.entries import Key, RunEntry
from kubehatch_operator.model import Gate, Run, Verdict


def run_key(run: Run, concurrency: ConcurrencySpec) -> str | None:
    """The run's concurrency key, or None while its key action has not answered yet.

    Raises ValueError when the expression cannot be evaluated over the run's input.
    """
    if run.status.concurrency_key is not None:
        return run.status.concurrency_key
    if concurrency.expression is None:
        return None  # the key action's pod is still computing it
    return concurrency_key(concurrency.expression, run.spec.input)


def contends(entry: RunEntry, now: datetime) -> bool:
    """Unfinished and due: a run scheduled for later does not hold or want a slot yet."""
    if entry.run is None:
        return False  # unreadable: it is failed on its own reconcile
    if entry.started:
        return True
    at = entry.run.spec.scheduled_at
    return not (at and at > now)


def gate(
    name: str,
    runs: Iterable[RunEntry],
    concurrency: ConcurrencySpec,
    now: datetime,
    holding: Collection[Key] = (),
) -> tuple[Gate, Admission]:
    """The verdict on run `name` among the workflow's unfinished `runs` (it is one of them).

    `holding` are runs with Jobs still running: they hold their slot whatever their
    status says (a start whose status write was lost in a crash still counts).
    """
    contenders: list[Contender] = []
    own_key: str | None = None
    for entry in runs:
        held = entry.key in holding
        if entry.run is None or not (held or contends(entry, now)):
            continue
        leaving = entry.run.spec.cancel
        if leaving and not held and not entry.started:
            continue  # cancelled before it started: it wants nothing
        run_name = entry.key[1]
        try:
            key = run_key(entry.run, concurrency)
        except ValueError as error:
            if run_name == name:
                return Gate(Verdict.FAIL, None, str(error)), Admission()
            continue  # that run fails on its own reconcile
        if key is None:
            continue  # neither holds nor wants a slot until its key is known
        if run_name == name:
            own_key = key
        contenders.append(
            Contender(
                run_name,
                key,
                entry.created,
                running=entry.started or held,
                arrival=entry.arrival,
                leaving=leaving,
            )
        )
    admission = admit(contenders, concurrency.max_runs, concurrency.limit_strategy)
    limit = f"{concurrency.max_runs} run(s) per key" + (
        " in total, shared in turn across keys"
        if concurrency.limit_strategy is LimitStrategy.GROUP_ROUND_ROBIN
        else ""
    )
    if name in admission.cancel:
        verdict = Gate(
            Verdict.CANCEL,
            own_key,
            f"cancelled by the concurrency limit ({concurrency.limit_strategy.value}, "
            f"key {own_key!r}, {limit})",
        )
    elif name in admission.queue:
        verdict = Gate(
            Verdict.QUEUE, own_key, f"waiting for a concurrency slot (key {own_key!r}, {limit})"
        )
    else:
        verdict = Gate(Verdict.START, own_key)
    return verdict, admission
