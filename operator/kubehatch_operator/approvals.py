"""WorkflowApprovals, by the run and step they answer, for steps that wait for approval.

Only the approvals of runs in the store are kept (an approval is valid only once its step
waits, and then its run is known), and they go when the run finishes or goes
(`forget`): memory follows the unfinished runs, not every approval ever made. At most
`PER_STEP` answers are kept per step, the latest ones (the latest answer wins anyway).
After a restart the log holds the approvals still in the cluster, listed by the watch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container
from datetime import datetime, timedelta
from typing import Any

from kubehatch.api import wire
from kubehatch_operator.waits import Approval

Key = tuple[str, str]
"""A run: (namespace, name)."""

PER_STEP = 16
SKEW = timedelta(seconds=5)
"""An approval counts if created at most this long before its step began to wait (by
the operator's clock): room for the API server's clock to lag the operator's. Older
ones answered an earlier wait of the step (before a retry) or a run of the same name."""


class ApprovalLog:
    def __init__(self, per_step: int = PER_STEP) -> None:
        self.per_step = per_step
        self._runs: dict[Key, dict[str, dict[str, Approval]]] = {}

    def observe(
        self, body: dict[str, Any], deleted: bool = False, runs: Container[Key] | None = None
    ) -> Key | None:
        """Record (or, ``deleted``, drop) an approval; returns the run to wake, if any.

        ``runs``: the runs that can still use an approval (the unfinished ones); the
        approvals of others are not kept."""
        meta = wire.mapping(body.get("metadata"))
        spec = wire.mapping(body.get("spec"))
        run, step = wire.mapping(spec.get("runRef")).get("name"), spec.get("step")
        name, at = meta.get("name"), wire.parse_time(meta.get("creationTimestamp"))
        if not isinstance(run, str) or not isinstance(step, str) or not isinstance(name, str):
            return None
        key = (str(meta.get("namespace", "")), run)
        if deleted:
            answers = self._runs.get(key, {}).get(step)
            if answers is not None and answers.pop(name, None) is not None:
                return key
            return None
        approver = spec.get("approver")
        if at is None or not isinstance(approver, str) or (runs is not None and key not in runs):
            return None
        comment = spec.get("comment")
        approval = Approval(
            name=name,
            approved=spec.get("approved", True) is not False,
            approver=approver,
            at=at,
            comment=comment if isinstance(comment, str) and comment else None,
        )
        answers = self._runs.setdefault(key, defaultdict(dict))[step]
        if answers.get(name) == approval:
            return None  # the same object again (a re-listing, a metadata change)
        answers[name] = approval
        while len(answers) > self.per_step:
            del answers[min(answers, key=lambda n: (answers[n].at, n))]
        return key

    def for_step(
        self, namespace: str, run: str, step: str, since: datetime | None = None
    ) -> list[Approval]:
        """The step's answers, oldest first; with ``since`` (when its wait began), only
        those created then or later (less `SKEW`)."""
        answers = self._runs.get((namespace, run), {}).get(step, {})
        earliest = since - SKEW if since is not None else None
        kept = [a for a in answers.values() if earliest is None or a.at >= earliest]
        return sorted(kept, key=lambda a: (a.at, a.name))

    def forget(self, run: Key) -> None:
        """The run finished or went: its approvals are of no more use."""
        self._runs.pop(run, None)

    def __len__(self) -> int:
        return sum(len(a) for steps in self._runs.values() for a in steps.values())
