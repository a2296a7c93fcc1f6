"""From the runs the store holds to a concurrency verdict for one run.

Reads plain run bodies (as the watch delivers them), computes each run's key (CEL over
its input, kept in status.concurrencyKey once known) and asks `admission.admit` who
may start. No API calls: the reconciler applies the verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kubehatch.api.cel import concurrency_key
from kubehatch.api.workflow import ConcurrencySpec
from kubehatch_operator.admission import Admission, Contender, admit
from kubehatch_operator.decisions import Gate, Verdict


def _time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_key(body: dict[str, Any], concurrency: ConcurrencySpec) -> str | None:
    """The run's concurrency key, or None while its key action has not answered yet.

    Raises ValueError when the expression cannot be evaluated over the run's input.
    """
    known = (body.get("status") or {}).get("concurrencyKey")
    if known is not None:
        return known
    if concurrency.expression is None:
        return None  # the key action's pod is still computing it
    return concurrency_key(concurrency.expression, (body.get("spec") or {}).get("input") or {})


def contends(body: dict[str, Any], now: datetime) -> bool:
    """Unfinished and due: a run scheduled for later does not hold or want a slot yet."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    if status.get("workflowSpec"):
        return True
    at = spec.get("scheduledAt")
    return not (at and _time(at) > now)


def gate(
    name: str, runs: Iterable[dict[str, Any]], concurrency: ConcurrencySpec, now: datetime
) -> tuple[Gate, Admission]:
    """The verdict on run `name` among the workflow's unfinished `runs` (it is one of them)."""
    contenders: list[Contender] = []
    own_key: str | None = None
    for body in runs:
        if not contends(body, now):
            continue
        meta = body["metadata"]
        try:
            key = run_key(body, concurrency)
        except ValueError as error:
            if meta["name"] == name:
                return Gate(Verdict.FAIL, None, str(error)), Admission()
            continue  # that run fails on its own reconcile
        if key is None:
            continue  # neither holds nor wants a slot until its key is known
        if meta["name"] == name:
            own_key = key
        running = bool((body.get("status") or {}).get("workflowSpec"))
        contenders.append(
            Contender(meta["name"], key, _time(meta.get("creationTimestamp")), running)
        )
    admission = admit(contenders, concurrency.max_runs, concurrency.limit_strategy)
    limit = f"{concurrency.max_runs} run(s) per key" + (
        " in total, shared in turn across keys"
        if concurrency.limit_strategy.value == "GroupRoundRobin"
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
