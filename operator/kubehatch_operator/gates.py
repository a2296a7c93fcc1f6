"""From the runs the store holds to a concurrency verdict for one run.

Reads typed run entries (parsed once by the store), computes each run's key (CEL over
its input, kept in status.concurrencyKey once known) and asks `admission.admit` who
may start. No API calls: the reconciler applies the verdicts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType

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
    return entry.started or not entry.not_due(now)


def contenders(
    runs: Iterable[RunEntry],
    concurrency: ConcurrencySpec,
    now: datetime,
    holding: Collection[Key] = (),
    only_key: str | None = None,
    known: Mapping[str, str] = MappingProxyType({}),
) -> tuple[list[Contender], dict[str, str]]:
    """The runs that hold or want a slot, and the runs whose key cannot be computed (by
    name, with why: they fail on their own pass). `only_key` keeps one key's runs: the
    strategies other than GroupRoundRobin never weigh one key against another. `known`
    are keys already computed, by run name.
    """
    found: list[Contender] = []
    broken: dict[str, str] = {}
    for entry in runs:
        cached = entry.contender
        if cached is not None and known.get(cached.name, cached.key) == cached.key:
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
    known: Mapping[str, str],
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
    key = known.get(name)
    if key is None:
        if entry.input_elided and recorded is None:
            return None  # its key needs its input, read on its own pass: it places itself
        try:
            key = run_key(run, concurrency)
        except ValueError as error:
            broken[name] = str(error)
            return None
    if key is None or (only_key is not None and key != only_key):
        return None  # neither holds nor wants a slot until its key is known
    return Contender(
        name, key, entry.created, running=entry.started or held,
        arrival=entry.arrival, leaving=leaving,
    )  # fmt: skip


def workflow_admission(
    runs: Iterable[RunEntry],
    concurrency: ConcurrencySpec,
    now: datetime,
    holding: Collection[Key] = (),
    only_key: str | None = None,
    known: Mapping[str, str] = MappingProxyType({}),
) -> Admission:
    """Who of the workflow's runs may start now, and who is cancelled (one key's, if given)."""
    found, _ = contenders(runs, concurrency, now, holding, only_key, known)
    return admit(found, concurrency.max_runs, concurrency.limit_strategy)


def gate(
    name: str,
    runs: Sequence[RunEntry],
    concurrency: ConcurrencySpec,
    now: datetime,
    holding: Collection[Key] = (),
    own_run: Run | None = None,
) -> tuple[Gate, Admission]:
    """The verdict on run `name` among the workflow's unfinished `runs` (it is one of them).

    `holding` are runs with Jobs still running: they hold their slot whatever their
    status says (a start whose status write was lost in a crash still counts).
    `own_run` is the run as its pass read it (with its input, which the store may lack).
    """
    if own_run is None:
        own = next((entry for entry in runs if entry.key[1] == name), None)
        own_run = own.run if own is not None else None
    own_key: str | None = None
    if own_run is not None:
        try:
            own_key = run_key(own_run, concurrency)
        except ValueError as error:
            return Gate(Verdict.FAIL, None, str(error)), Admission()
    per_key = concurrency.limit_strategy is not LimitStrategy.GROUP_ROUND_ROBIN
    admission = workflow_admission(
        runs, concurrency, now, holding, own_key if per_key else None,
        {name: own_key} if own_key is not None else {},
    )  # fmt: skip
    limit = f"{concurrency.max_runs} run(s) per key" + (
        "" if per_key else " in total, shared in turn across keys"
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
