"""kubehatch: Hatchet-style workflows on Kubernetes.

Declare workflows in Python, render them to Workflow resources with
``kubehatch render module:worker``, and let the operator run each step in a pod::

    worker = Worker("users", image="registry.example/users:1.0")
    worker.register_workflow(
        WorkflowJob(
            name="welcome",
            on=Event("user:created"),
            steps=[Fn(send_welcome_email)],
        )
    )

The public surface is this module, :mod:`kubehatch.api` (the resource models and the
wire contract with the operator), :mod:`kubehatch.client`, :mod:`kubehatch.testing`,
:mod:`kubehatch.errors`, :mod:`kubehatch.durations` and the ``kubehatch`` command
(:mod:`kubehatch.cli`). The classes exported here are defined in modules of their own
(``worker``, ``service``, ``steps``, ``context``, ``concurrency``, ``triggers``), the names
type checkers show. Modules whose names start with "_" are internal: import their public
names from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubehatch._actions import Action, ResolvedAction, run_step, run_step_async
    from kubehatch._loader import load_worker
    from kubehatch._middleware import Middleware, Next
    from kubehatch._render import render_yaml, workflow_manifests, workflow_resources
    from kubehatch._serialization import to_jsonable
    from kubehatch._workflows import WorkflowJob
    from kubehatch.api.workflow import Backoff, LimitStrategy
    from kubehatch.concurrency import Concurrency
    from kubehatch.context import Context
    from kubehatch.durations import format_duration, parse_duration
    from kubehatch.errors import (
        InputError,
        KubehatchError,
        OutputError,
        PermanentError,
        Problem,
        RegistrationError,
        StepCancelledError,
        StepTimeoutError,
        TemporaryError,
        UnknownActionError,
        UnknownParentError,
        WorkerLoadError,
    )
    from kubehatch.ratelimits import RateLimit
    from kubehatch.service import Service
    from kubehatch.steps import Fn
    from kubehatch.triggers import At, Cron, Crons, Event, Events, Trigger
    from kubehatch.waits import Approval, Sleep, WaitForEvent, WaitUntil
    from kubehatch.worker import Worker

_EXPORTS: dict[str, str] = {
    "Action": "kubehatch._actions",
    "Approval": "kubehatch.waits",
    "Sleep": "kubehatch.waits",
    "WaitForEvent": "kubehatch.waits",
    "WaitUntil": "kubehatch.waits",
    "At": "kubehatch.triggers",
    "Backoff": "kubehatch.api.workflow",
    "Concurrency": "kubehatch.concurrency",
    "Context": "kubehatch.context",
    "Cron": "kubehatch.triggers",
    "Crons": "kubehatch.triggers",
    "Event": "kubehatch.triggers",
    "Events": "kubehatch.triggers",
    "Fn": "kubehatch.steps",
    "InputError": "kubehatch.errors",
    "KubehatchError": "kubehatch.errors",
    "LimitStrategy": "kubehatch.api.workflow",
    "Middleware": "kubehatch._middleware",
    "Next": "kubehatch._middleware",
    "OutputError": "kubehatch.errors",
    "RateLimit": "kubehatch.ratelimits",
    "PermanentError": "kubehatch.errors",
    "Problem": "kubehatch.errors",
    "RegistrationError": "kubehatch.errors",
    "ResolvedAction": "kubehatch._actions",
    "Service": "kubehatch.service",
    "StepCancelledError": "kubehatch.errors",
    "StepTimeoutError": "kubehatch.errors",
    "TemporaryError": "kubehatch.errors",
    "Trigger": "kubehatch.triggers",
    "UnknownActionError": "kubehatch.errors",
    "UnknownParentError": "kubehatch.errors",
    "Worker": "kubehatch.worker",
    "WorkerLoadError": "kubehatch.errors",
    "WorkflowJob": "kubehatch._workflows",
    "format_duration": "kubehatch.durations",
    "load_worker": "kubehatch._loader",
    "parse_duration": "kubehatch.durations",
    "render_yaml": "kubehatch._render",
    "run_step": "kubehatch._actions",
    "run_step_async": "kubehatch._actions",
    "to_jsonable": "kubehatch._serialization",
    "workflow_manifests": "kubehatch._render",
    "workflow_resources": "kubehatch._render",
}
"""Where each public name is defined. They load on first use (PEP 562), so that
``import kubehatch.api`` (the operator's only way in) does not load the whole SDK."""


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = _version()
        return globals()[name]
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kubehatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _version() -> str:
    """The installed distribution's version (pyproject's), read on first use."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kubehatch")
    except PackageNotFoundError:  # the sources on sys.path, not installed
        return "0+unknown"


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Action",
    "Approval",
    "At",
    "Backoff",
    "Concurrency",
    "Context",
    "Cron",
    "Crons",
    "Event",
    "Events",
    "Fn",
    "InputError",
    "KubehatchError",
    "LimitStrategy",
    "Middleware",
    "Next",
    "OutputError",
    "PermanentError",
    "Problem",
    "RateLimit",
    "RegistrationError",
    "ResolvedAction",
    "Service",
    "Sleep",
    "StepCancelledError",
    "StepTimeoutError",
    "TemporaryError",
    "Trigger",
    "UnknownActionError",
    "UnknownParentError",
    "WaitForEvent",
    "WaitUntil",
    "Worker",
    "WorkerLoadError",
    "WorkflowJob",
    "format_duration",
    "load_worker",
    "parse_duration",
    "render_yaml",
    "run_step",
    "run_step_async",
    "to_jsonable",
    "workflow_manifests",
    "workflow_resources",
]
