"""From the runs the store holds to a concurrency verdict for one run.

Reads typed run entries (parsed once by the store), computes each run's key and limit
(CEL over its input and metadata, kept in status.concurrencyKey and
status.concurrencyLimit once known) and asks `admission.admit` who may start. No API
calls: the reconciler applies the verdicts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from kubehatch.api.cel import concurrency_key, concurrency_limit
from kubehatch.api.workflow import ConcurrencySpec, LimitStrategy, WorkflowSpec
from kubehatch.durations import format_duration
from kubehatch_operator.admission import Admission, Contender, Policy, admit, key_limit_of
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
    return concurrency_key(concurrency.expression, run.spec.input, run.spec.additional_metadata)


def run_limit(run: Run, concurrency: ConcurrencySpec) -> int | None:
    """The run's own limit for its key (maxRunsExpression), or None without one.

    Raises ValueError when the expression fails or gives no whole number of at least 1.
    """
    if concurrency.max_runs_expression is None:
        return None
    if run.status.concurrency_limit is not None:
        return run.status.concurrency_limit
    return concurrency_limit(
        concurrency.max_runs_expression, run.spec.input, run.spec.additional_metadata
    )


def contends(entry: RunEntry, now: datetime) -> bool:
    """Unfinished and due: a run scheduled for later does not hold or want a slot yet."""
    if entry.run is None:
        return False  # unreadable: it is failed on its own reconcile
    return entry.started or not entry.not_due(now)


@dataclass(frozen=True)
class Known:
    """What the pass of one run computed about it (its store entry may lack it yet)."""

    name: str
    key: str
    limit: int | None = None


def contenders(
    runs: Iterable[RunEntry],
    concurrency: ConcurrencySpec,
    now: datetime,
    holding: Collection[Key] = (),
    only_key: str | None = None,
    known: Known | None = None,
) -> tuple[list[Contender], dict[str, str]]:
    """The runs that hold or want a slot, and the runs whose key cannot be computed (by
    name, with why: they fail on their own pass). `only_key` keeps one key's runs: without
    maxRunsTotal, admission never weighs one key against another.
    """
    found: list[Contender] = []
    broken: dict[str, str] = {}
    for entry in runs:
        cached = entry.contender
        if cached is not None and (known is None or known.name != cached.name):
            # The common case, kept to a few lookups: admission weighs every run of a key
            # each time a slot frees.
            if only_key is not None and cached.key != only_key:
                continue
            held = bool(holding) and entry.key in holding
            if not (cached.running or held) and (cached.leaving or entry.not_due(now)):
                continue  # cancelled before it started, or scheduled for later
            found.append(replace(cached, running=True) if held and not cached.running else cached)
            continue
        slow = _contender(entry, concurrency, now, holding, only_key, known, broken)
        if slow is not None:
            found.append(slow)
    return found, broken


def _contender(
    entry: RunEntry,
    concurrency: ConcurrencySpec,
    now: datetime,
    holding: Collection[Key],
    only_key: str | None,
    known: Known | None,
    broken: dict[str, str],
) -> Contender | None:
    """A run whose key is not recorded yet (or known otherwise), as admission weighs it."""
    run = entry.run
    if run is None:
        return None
    recorded = entry.recorded_key
    if only_key is not None and recorded is not None and recorded != only_key:
        return None  # cheap: a recorded key of another group
    held = entry.key in holding
    if not (held or contends(entry, now)):
        return None
    leaving = run.spec.cancel
    if leaving and not held and not entry.started:
        return None  # cancelled before it started: it wants nothing
    name = entry.key[1]
    key: str | None
    if known is not None and known.name == name:
        key, limit = known.key, known.limit
    else:
        if recorded is None and (entry.input_elided or concurrency.shared is not None):
            # Its key needs its input (read on its own pass), or its own Workflow's key
            # expression (a shared limit's members may differ): it places itself.
            return None
        try:
            key, limit = run_key(run, concurrency), run_limit(run, concurrency)
        except ValueError as error:
            broken[name] = str(error)
            return None
    if key is None or (only_key is not None and key != only_key):
        return None  # neither holds nor wants a slot until its key is known
    return entry.contender_as(key, limit, running=entry.started or held)


def workflow_admission(
    runs: Iterable[RunEntry],
    spec: WorkflowSpec,
    now: datetime,
    holding: Collection[Key] = (),
    only_key: str | None = None,
    served: str | None = None,
) -> Admission:
    """Who of the workflow's runs may start now, and who is cancelled (one key's, if given)."""
    assert spec.concurrency is not None
    found, _ = contenders(runs, spec.concurrency, now, holding, only_key)
    return admit(found, Policy.of(spec.concurrency, spec.default_priority), served)


def gate(
    name: str,
    runs: Sequence[RunEntry],
    spec: WorkflowSpec,
    now: datetime,
    holding: Collection[Key] = (),
    own_run: Run | None = None,
    served: str | None = None,
) -> tuple[Gate, Admission]:
    """The verdict on run `name` among the workflow's unfinished `runs` (it is one of them).

    `holding` are runs that hold a slot whatever their status says: Jobs still running (a
    start whose status write a crash lost still counts), or a slot handed to them by an
    admission whose start is not written yet. `own_run` is the run as its pass read it
    (with its input, which the store may lack). `served` is the key that took the last
    slot (GroupRoundRobin with maxRunsTotal goes on after it).
    """
    concurrency = spec.concurrency
    assert concurrency is not None
    own = next((entry for entry in runs if entry.key[1] == name), None)
    if own_run is None:
        own_run = own.run if own is not None else None
    own_key: str | None = None
    own_limit: int | None = None
    if own_run is not None:
        try:
            own_key, own_limit = run_key(own_run, concurrency), run_limit(own_run, concurrency)
        except ValueError as error:
            return Gate(Verdict.FAIL, None, str(error)), Admission()
    if own is not None and not own.started and own.key in holding and own_key is not None:
        # Handed a slot (or its Jobs run though its start was never recorded): it starts.
        # A started run is weighed as any other: newer runs may push it out.
        return Gate(Verdict.START, own_key, limit=own_limit), Admission()
    known = Known(name, own_key, own_limit) if own_key is not None else None
    only_key = own_key if concurrency.per_key else None
    found, _ = contenders(runs, concurrency, now, holding, only_key, known)
    policy = Policy.of(concurrency, spec.default_priority)
    admission = admit(found, policy, served)
    # The key's limit, as admission applied it (its newest run's own, with a dynamic one).
    key_limit = key_limit_of([c for c in found if c.key == own_key], policy)
    if name in admission.cancel:
        gate = _cancelled(concurrency, own_key, key_limit)
        return replace(gate, limit=own_limit), admission
    if name not in admission.queue:
        return Gate(Verdict.START, own_key, limit=own_limit), admission
    since = own.queued_since if own is not None else now
    timeout = concurrency.queue_timeout_delta
    if timeout is not None and now >= since + timeout:
        message = (
            f"waited {format_duration(now - since)} for a concurrency slot (key {own_key!r}), "
            f"more than concurrency.queueTimeout ({concurrency.queue_timeout})"
        )
        return Gate(Verdict.CANCEL, own_key, message, own_limit, "QueueTimeout"), admission
    message = _waiting(name, own_key, key_limit, found, admission, concurrency)
    deadline = since + timeout if timeout is not None else None
    return Gate(Verdict.QUEUE, own_key, message, own_limit, "Queued", deadline), admission


def _limit_text(concurrency: ConcurrencySpec, limit: int | None) -> str:
    text = f"{limit or concurrency.max_runs} run(s) per key"
    if concurrency.max_runs_total is not None:
        text += f", {concurrency.max_runs_total} in total"
    if concurrency.shared is not None:
        text += f", shared limit {concurrency.shared!r}"
    return text


def _cancelled(concurrency: ConcurrencySpec, key: str | None, limit: int | None) -> Gate:
    strategy = concurrency.limit_strategy
    why = {
        LimitStrategy.CANCEL_IN_PROGRESS: "newer runs of the key took its slots",
        LimitStrategy.CANCEL_NEWEST: "the key's slots are taken and new runs over the limit "
        "are cancelled",
        LimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST: "a newer run of the key is queued, and "
        "only the newest queued run is kept",
        LimitStrategy.CANCEL_QUEUED_EXCEPT_OLDEST: "an older run of the key is queued, and "
        "only the oldest queued run is kept",
    }.get(strategy, "over the limit")
    message = (
        f"cancelled by the concurrency limit ({strategy.value}, key {key!r}, "
        f"{_limit_text(concurrency, limit)}): {why}"
    )
    return Gate(Verdict.CANCEL, key, message, limit, "ConcurrencyLimit")


def _waiting(
    name: str,
    key: str | None,
    limit: int | None,
    found: Sequence[Contender],
    admission: Admission,
    concurrency: ConcurrencySpec,
) -> str:
    """Why a queued run waits: its key, its place in the queue, and who holds the slots."""
    position = admission.queue.index(name) + 1
    same_key = [c.name for c in found if c.running and c.key == key]
    if concurrency.max_runs_total is not None and len(same_key) < (limit or concurrency.max_runs):
        holders = sorted(c.name for c in found if c.running)  # the total is what is full
    else:
        holders = sorted(same_key)
    shown = ", ".join(holders[:3]) + (f" and {len(holders) - 3} more" if len(holders) > 3 else "")
    return (
        f"waiting for a concurrency slot: key {key!r}, number {position} of "
        f"{len(admission.queue)} in the queue; slots held by {shown or 'runs being cancelled'} "
        f"({concurrency.limit_strategy.value}, {_limit_text(concurrency, limit)})"
    )
