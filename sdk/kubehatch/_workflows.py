"""``WorkflowJob``: a named workflow made of steps, with its triggers and limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kubehatch._origin import caller_origin
from kubehatch.concurrency import Concurrency
from kubehatch.steps import Fn
from kubehatch.triggers import Trigger


@dataclass(kw_only=True)
class WorkflowJob:
    """A workflow: steps (``Fn``) forming a DAG through their parents.

    Everything is checked when the workflow is registered on a worker or service, and
    all problems are reported together with the line that caused each.
    """

    name: str
    """The Workflow's name (a DNS label, e.g. "post-user-sign-up")."""
    steps: Sequence[Fn[Any]]
    description: str | None = None
    on: Trigger | Sequence[Trigger] | None = None
    """What starts runs besides manual ones: ``Event(...)``, ``Cron(...)``, ``At(...)``, a list."""
    timeout: str | timedelta | None = None
    """Longest time a whole run may take: "60s", "5m", "1h30m" or a timedelta."""
    concurrency: Concurrency | None = None
    default_priority: int | None = None
    """Priority of runs that set none: 1 (low, the default) to 3 (high)."""
    on_failure: Fn[Any] | None = None
    """A step run once the others are done when one of them failed (after its retries);
    ``ctx.step_run_errors()`` tells it what failed. The run stays Failed."""
    on_success: Fn[Any] | None = None
    """A step run once the others are done when none of them failed."""
    on_exit: Fn[Any] | None = None
    """A step run last, whether a step failed or not (after ``on_failure`` or
    ``on_success``): a finally, e.g. to clean up. Not run when the run is cancelled or
    times out."""
    fail_fast: bool = False
    """True ends a run at its first failed step; by default a failure stops only the steps
    that depend on it, and the other branches run to their end."""
    spawns: Sequence[str] = ()
    """Workflows whose runs the steps may start as child runs (``ctx.spawn``); a step that
    spawns any other workflow fails."""
    image: str | None = None
    """Default image of the steps; the worker's image when not set."""
    service_account_name: str | None = None
    pool: str | None = None
    """Run the steps on this WorkerPool's warm worker pods (in the run's namespace) instead
    of a pod per step; see README 'Warm worker pools'. A step's own ``pool`` overrides it.
    Local runs ignore pools."""
    suspend: bool = False
    """True stops triggers (manual runs still work)."""
    ttl_seconds_after_finished: int | None = None
    history_limit: int | None = None
    """Finished runs kept; older ones are deleted."""
    input_validator: type[Any] | None = None
    """The model of the runs' input (pydantic model, dataclass, TypedDict): its JSON Schema
    goes into the Workflow, and runs whose input does not fit are refused."""
    origin: str = field(default_factory=caller_origin, repr=False, compare=False)
    """Where the workflow was declared (set automatically)."""
