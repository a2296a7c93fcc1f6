"""The worker's decisions, as pure functions: what to claim, when to renew, how it ended.

Kept apart from the API and the processes so every rule can be tested on plain dicts:
the loop (:mod:`kubehatch._pool.loop`) only carries them out.
"""

from __future__ import annotations

import signal
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kubehatch.api import wire
from kubehatch.api.stepenv import StepEnv, StepEnvError
from kubehatch.api.workertask import MAX_MESSAGE_BYTES, TaskPhase, TaskReason

TIMEOUT_BACKSTOP_SECONDS = 10.0
"""A child still running this long past its step's timeout is SIGKILLed (its own SIGALRM
should have ended it)."""
RETRY_RENEWAL_SECONDS = 1.0
"""After a failed renewal, the next try comes this soon (never later than the usual one)."""

_EXITS: dict[int, TaskReason] = {
    wire.EXIT_SUCCEEDED: TaskReason.SUCCEEDED,
    wire.EXIT_FAILED: TaskReason.ERROR,
    wire.EXIT_PERMANENT: TaskReason.PERMANENT,
    wire.EXIT_SELF_CANCELLED: TaskReason.SELF_CANCELLED,
    wire.EXIT_TIMED_OUT: TaskReason.TIMED_OUT,
    wire.EXIT_CANCELLED: TaskReason.CANCELLED,
}
_SIGNAL_HINTS: dict[int, str] = {
    signal.SIGKILL: " (out of memory?)",
    signal.SIGSEGV: " (a crash in native code?)",
    signal.SIGBUS: " (a crash in native code?)",
    signal.SIGABRT: " (a crash in native code?)",
}


class Stop(StrEnum):
    """Why the worker itself stops a step's child (its exit then means something else)."""

    DELETED = "deleted"
    """The operator deleted the task (the run was cancelled): report nothing."""
    LOST = "lost"
    """The claim is no longer ours (lease lapsed, marked WorkerLost): report nothing."""
    SHUTDOWN = "shutdown"
    """The worker is shutting down: the step is reported Cancelled and runs again."""
    TIMEOUT = "timeout"
    """Still running well past its timeout: SIGKILLed, reported TimedOut."""

    @property
    def reports(self) -> bool:
        return self in (Stop.SHUTDOWN, Stop.TIMEOUT)


def stop_line(name: str, why: Stop, detail: str, grace: float, timeout: int | None) -> str:
    """The progress line saying that, and why, the worker stops a step."""
    return {
        Stop.DELETED: f"{name} was deleted (its run was cancelled): stopping its step "
        f"(SIGTERM, SIGKILL in {grace:g}s)",
        Stop.LOST: f"lost the claim on {name}: {detail}; killed its step",
        Stop.SHUTDOWN: f"stopping {name} (SIGTERM): the worker is shutting down",
        Stop.TIMEOUT: f"{name} ran {TIMEOUT_BACKSTOP_SECONDS:g}s past its timeout of "
        f"{timeout}s: killed its step",
    }[why]


def timestamp(at: datetime | None = None) -> str:
    """RFC 3339 in UTC, always with microseconds: latencies are computed from these."""
    return (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _status(task: Mapping[str, Any]) -> dict[str, Any]:
    return wire.mapping(task.get("status"))


def _meta(task: Mapping[str, Any]) -> dict[str, Any]:
    return wire.mapping(task.get("metadata"))


def name_of(task: Mapping[str, Any]) -> str:
    return str(_meta(task).get("name", ""))


def version_of(task: Mapping[str, Any]) -> str:
    return str(_meta(task).get("resourceVersion", ""))


def phase_of(task: Mapping[str, Any]) -> str:
    return str(_status(task).get("phase") or TaskPhase.PENDING.value)


def is_finished(task: Mapping[str, Any]) -> bool:
    return phase_of(task) in (TaskPhase.SUCCEEDED.value, TaskPhase.FAILED.value)


def is_deleting(task: Mapping[str, Any]) -> bool:
    """Being deleted (a foreground deletion shows first as a deletionTimestamp)."""
    return bool(_meta(task).get("deletionTimestamp"))


def is_claimable(task: Mapping[str, Any], pool: str) -> bool:
    """Pending (or no status yet), nobody's, of our pool, not being deleted."""
    spec = wire.mapping(task.get("spec"))
    return (
        spec.get("pool") == pool
        and phase_of(task) == TaskPhase.PENDING.value
        and not _status(task).get("worker")
        and not is_deleting(task)
        and bool(name_of(task))
    )


def is_ours(task: Mapping[str, Any], identity: str) -> bool:
    """Claimed by ``identity`` and still running: the claim holds."""
    return _status(task).get("worker") == identity and phase_of(task) == TaskPhase.RUNNING.value


def is_taken(task: Mapping[str, Any], identity: str) -> bool:
    """Whether a task ``identity`` runs is no longer its own: another worker has it, or it
    ended (the operator marked it WorkerLost). A stale copy without a worker is not."""
    worker = _status(task).get("worker")
    return is_finished(task) or (bool(worker) and worker != identity)


def next_claim(
    tasks: Iterable[Mapping[str, Any]], pool: str, skip: Container[str] = ()
) -> Mapping[str, Any] | None:
    """The claimable task waiting longest (oldest creationTimestamp, then name)."""
    candidates = [t for t in tasks if is_claimable(t, pool) and name_of(t) not in skip]
    if not candidates:
        return None
    return min(candidates, key=lambda t: (str(_meta(t).get("creationTimestamp", "")), name_of(t)))


def claim_patch(version: str, identity: str, at: datetime | None = None) -> dict[str, Any]:
    """The claim: a status write whose resourceVersion is a precondition (409 if stale)."""
    now = timestamp(at)
    return {
        "metadata": {"resourceVersion": version},
        "status": {
            "phase": TaskPhase.RUNNING.value,
            "worker": identity,
            "claimedAt": now,
            "renewedAt": now,
        },
    }


def renewal_patch(version: str, at: datetime | None = None) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "status": {"renewedAt": timestamp(at)}}


def renew_every(lease_seconds: float) -> float:
    return lease_seconds / 3


def next_renewal(last_try: float, lease_seconds: float, failed: bool) -> float:
    """When to renew next: a third of the lease on, sooner after a failure."""
    interval = renew_every(lease_seconds)
    return last_try + (min(RETRY_RENEWAL_SECONDS, interval) if failed else interval)


def lease_lapsed(last_renewed: float, lease_seconds: float, now: float) -> bool:
    """Renewals failed for longer than the lease: the operator is running it elsewhere."""
    return now - last_renewed > lease_seconds


def lease_of(task: Mapping[str, Any], default: int = 15) -> int:
    try:
        return int(wire.mapping(task.get("spec")).get("leaseSeconds") or default)
    except (TypeError, ValueError):
        return default


def step_env(task: Mapping[str, Any]) -> StepEnv | None:
    """The step attempt the task's environment describes (None when it describes none)."""
    env = wire.mapping(wire.mapping(task.get("spec")).get("env"))
    try:
        return StepEnv.from_env({wire.ENV_WORKER: "-", **env})
    except StepEnvError:
        return None


def timeout_of(task: Mapping[str, Any]) -> int | None:
    """The step's timeout in seconds, as its environment tells the child."""
    step = step_env(task)
    return step.timeout_seconds if step and step.timeout_seconds else None


def kill_deadline(
    started: float, timeout_seconds: int | None, backstop: float = TIMEOUT_BACKSTOP_SECONDS
) -> float | None:
    """When to SIGKILL a child that outlived its own timeout (None: no timeout)."""
    return None if timeout_seconds is None else started + timeout_seconds + backstop


def describe(task: Mapping[str, Any]) -> str:
    """run/step/attempt (step[item] for an item of a forEach step), for progress lines."""
    step = step_env(task)
    if step is None:
        return "?"
    item = f"[{step.item}]" if step.item is not None else ""
    return f"{step.run}/{step.step}{item}/{step.attempt}"


@dataclass(frozen=True)
class Outcome:
    """How a finished task is reported."""

    phase: TaskPhase
    reason: TaskReason
    message: str | None = None
    output: str | None = None

    def patch(self, version: str, at: datetime | None = None) -> dict[str, Any]:
        status: dict[str, Any] = {
            "phase": self.phase.value,
            "reason": self.reason.value,
            "finishedAt": timestamp(at),
        }
        if self.message is not None:
            status["message"] = self.message
        if self.output is not None:
            status["output"] = self.output
        return {"metadata": {"resourceVersion": version}, "status": status}


def clip(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """At most ``limit`` bytes of UTF-8, cut on a character boundary."""
    encoded = message.encode()
    return message if len(encoded) <= limit else encoded[:limit].decode(errors="ignore")


def killed_message(signum: int) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return f"the step's process was killed by {name}{_SIGNAL_HINTS.get(signum, '')}"


def reason_of(code: int) -> tuple[TaskPhase, TaskReason]:
    """An exit code (negative: killed by that signal) as the task's phase and reason."""
    reason = _EXITS.get(code, TaskReason.ERROR)
    phase = TaskPhase.SUCCEEDED if reason is TaskReason.SUCCEEDED else TaskPhase.FAILED
    return phase, reason


def outcome(
    code: int,
    *,
    output: str | None,
    message: str | None,
    stop: Stop | None = None,
    timeout_seconds: int | None = None,
    worker: str = "",
) -> Outcome:
    """What to report for a child that ended with ``code`` (os.waitstatus_to_exitcode's).

    ``output`` and ``message`` are what the child handed back; ``stop`` says why the
    worker stopped it, if it did (then a failure is the worker's doing, not the step's).
    """
    phase, reason = reason_of(code)
    if phase is TaskPhase.SUCCEEDED:
        if output is None:
            return Outcome(
                TaskPhase.FAILED, TaskReason.ERROR, "the step ended without handing back an output"
            )
        return Outcome(phase, reason, None, output)
    if stop is Stop.TIMEOUT:
        return Outcome(
            TaskPhase.FAILED,
            TaskReason.TIMED_OUT,
            f"timed out: the step ran longer than its timeout of {timeout_seconds}s and did "
            f"not stop; killed {TIMEOUT_BACKSTOP_SECONDS:g}s later",
        )
    if stop is Stop.SHUTDOWN:
        return Outcome(
            TaskPhase.FAILED,
            TaskReason.CANCELLED,
            f"its worker {worker} shut down (pod deleted or scaled down) while the step ran; "
            "it runs again",
        )
    if code < 0:
        message = killed_message(-code)
    elif not message:
        message = f"the step's process exited with status {code}"
    return Outcome(phase, reason, clip(message))
