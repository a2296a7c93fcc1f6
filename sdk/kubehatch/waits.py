"""Steps that wait without a pod: ``Sleep``, ``WaitUntil``, ``WaitForEvent``, ``Approval``.

Each is a step like any ``Fn`` (a parent, a child, ``set_name``, ``add_parents``), whose
output the steps after it read with ``ctx.step_output``: ``WaitForEvent`` gives the
event (``{"key", "data", "metadata", "event"}``), ``Approval`` the answer
(``{"approved", "approver", "comment", "at"}``), a wait that timed out with
``on_timeout="Continue"`` gives ``{"timedOut": true}``. No pod runs while they wait, and
a restarted operator picks the wait up where it was (it starts from the step's
``startedAt``)::

    order = Fn(place_order)
    paid = WaitForEvent("order:paid", filter="event.data.order_id == input.order_id",
                        timeout="1h", lookback="5m").set_name("paid").add_parents(order)
    ship = Fn(ship_order).add_parents(paid)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from kubehatch._origin import caller_origin
from kubehatch.steps import Fn

OnTimeout = Literal["Fail", "Continue"]


def _duration(value: str | timedelta) -> str:
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())}s"
    return value


class _Wait(Fn[dict[str, Any]]):
    """A step that waits: no function, no action; its ``wait`` is the spec."""

    def __init__(
        self,
        kind: str,
        spec: Any,
        timeout: str | timedelta | None = None,
        on_timeout: OnTimeout | None = None,
    ) -> None:
        self._setup(None, None)
        wait: dict[str, Any] = {kind: spec}
        if timeout is not None:
            wait["timeout"] = _duration(timeout)
        if on_timeout is not None:
            wait["onTimeout"] = on_timeout
        self.wait = wait
        self.origin = caller_origin()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Sleep(_Wait):
    """Wait ``duration`` ("1h", a timedelta) after the parents are done."""

    def __init__(self, duration: str | timedelta) -> None:
        super().__init__("sleep", _duration(duration))


class WaitUntil(_Wait):
    """Wait until the RFC 3339 time a CEL expression gives (``"input.send_at"``)."""

    def __init__(self, expression: str) -> None:
        super().__init__("until", expression)


class WaitForEvent(_Wait):
    """Wait for a WorkflowEvent with ``key`` (a trailing ``*`` matches more) for which the
    CEL ``filter`` is true (over ``event``, ``input``, ``parents``); events up to
    ``lookback`` before the wait began count too (at most a day)."""

    def __init__(
        self,
        key: str,
        *,
        filter: str | None = None,
        lookback: str | timedelta | None = None,
        timeout: str | timedelta | None = None,
        on_timeout: OnTimeout | None = None,
    ) -> None:
        event: dict[str, Any] = {"key": key}
        if filter is not None:
            event["filter"] = filter
        if lookback is not None:
            event["lookback"] = _duration(lookback)
        super().__init__("event", event, timeout, on_timeout)


class Approval(_Wait):
    """Wait for a person: ``kubehatch approve RUN STEP`` (``--reject``, ``--comment``).
    A rejection fails the step, saying who rejected it and why."""

    def __init__(
        self,
        message: str | None = None,
        *,
        timeout: str | timedelta | None = None,
        on_timeout: OnTimeout | None = None,
    ) -> None:
        super().__init__("approval", {"message": message} if message else {}, timeout, on_timeout)
