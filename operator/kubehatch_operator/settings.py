"""Operator settings, read once from the environment (the Helm chart sets them).

Grouped by what they govern, as kopf's own settings are: ``steps`` (the pods that run
steps), ``triggers`` (cron pods, event retention), ``api`` (the client), ``observability``
(metrics, Events). Each variable is read in one place, and a bad value stops the
operator at start-up with the variable's name, not at the first run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from kubehatch.durations import parse_duration

T = TypeVar("T")


@dataclass(frozen=True)
class StepSettings:
    service_account: str = "kubehatch-step"
    """ServiceAccount of step pods when the Workflow names none: it may only create ConfigMaps."""

    grace_seconds: int = 5
    """terminationGracePeriodSeconds of step pods: the time a step has after SIGTERM."""

    run_as_user: int = 65532
    """UID of step and trigger containers; the restricted Pod Security Standard forbids root."""

    allowed_service_accounts: frozenset[str] = frozenset()
    """Accounts a Workflow may name in spec.serviceAccountName, besides `service_account`;
    never the operator's or the trigger's (the chart refuses those)."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    """nodeSelector of every step pod: a cluster's step pool, or kwok's fake nodes."""

    tolerations: tuple[Mapping[str, Any], ...] = ()
    """Tolerations of every step pod, for tainted step nodes."""

    priority_classes: Mapping[int, str] = field(default_factory=dict)
    """PriorityClass of the step pods of a run, by the run's priority (1-3); none when
    its priority has no entry."""

    worker_service_account: str = "kubehatch-worker"
    """ServiceAccount of WorkerPool pods that name none: it may claim and report the
    namespace's WorkerTasks, nothing else."""

    kueue_queue: str | None = None
    """A Kueue LocalQueue: step Jobs are created suspended with Kueue's queue-name label,
    so that Kueue admits each one under the cluster's quotas."""

    @property
    def allowed(self) -> frozenset[str]:
        return self.allowed_service_accounts | {self.service_account}

    @property
    def allowed_for_workers(self) -> frozenset[str]:
        """Accounts a WorkerPool may name: the worker account only (the one the chart's
        admission policy holds to claiming its own pool's tasks)."""
        return frozenset({self.worker_service_account})


@dataclass(frozen=True)
class TriggerSettings:
    image: str | None = None
    """Image of cron trigger pods (`kubehatch trigger`); None leaves CronJobs alone."""

    service_account: str = "kubehatch-trigger"
    """ServiceAccount of cron trigger pods: it may only create WorkflowRuns."""

    event_retention: timedelta = timedelta(hours=1)
    """How long a handled WorkflowEvent is kept (its runs carry its payload)."""


@dataclass(frozen=True)
class ApiSettings:
    workers: int = 32
    """Threads for (blocking) Kubernetes API calls, and the HTTP connection pool size."""

    scan_cluster: bool = True
    """List namespaces and CRDs cluster-wide; off when only exact namespaces are watched."""

    namespaces: tuple[str, ...] = ()
    """The namespaces watched (exact names or globs, as given to kopf); empty: all."""


@dataclass(frozen=True)
class ObservabilitySettings:
    metrics_port: int = 0
    """Port of the Prometheus metrics endpoint; 0 serves none."""

    post_events: bool = True
    """Post a Kubernetes Event for every step and run transition (one API write each)."""


@dataclass(frozen=True)
class Settings:
    steps: StepSettings = field(default_factory=StepSettings)
    triggers: TriggerSettings = field(default_factory=TriggerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        read = _Reader(os.environ if env is None else env)
        return cls(
            steps=StepSettings(
                service_account=read("KUBEHATCH_STEP_SERVICE_ACCOUNT", str, "kubehatch-step"),
                grace_seconds=read("KUBEHATCH_STEP_GRACE_SECONDS", int, 5),
                run_as_user=read("KUBEHATCH_STEP_RUN_AS_USER", int, 65532),
                allowed_service_accounts=read(
                    "KUBEHATCH_ALLOWED_STEP_SERVICE_ACCOUNTS", _names, ""
                ),
                node_selector=read("KUBEHATCH_STEP_NODE_SELECTOR", _string_map, "{}"),
                tolerations=read("KUBEHATCH_STEP_TOLERATIONS", _objects, "[]"),
                priority_classes=read("KUBEHATCH_STEP_PRIORITY_CLASSES", _priority_map, "{}"),
                kueue_queue=read("KUBEHATCH_STEP_KUEUE_QUEUE", str, "") or None,
                worker_service_account=read(
                    "KUBEHATCH_WORKER_SERVICE_ACCOUNT", str, "kubehatch-worker"
                ),
            ),
            triggers=TriggerSettings(
                image=read("KUBEHATCH_TRIGGER_IMAGE", str, "") or None,
                service_account=read("KUBEHATCH_TRIGGER_SERVICE_ACCOUNT", str, "kubehatch-trigger"),
                event_retention=read("KUBEHATCH_EVENT_RETENTION", parse_duration, "1h"),
            ),
            api=ApiSettings(
                workers=read("KUBEHATCH_API_WORKERS", int, 32),
                scan_cluster=read("KUBEHATCH_SCAN_CLUSTER", _boolean, "true"),
                namespaces=tuple(sorted(read("KUBEHATCH_WATCH_NAMESPACES", _names, ""))),
            ),
            observability=ObservabilitySettings(
                metrics_port=read("KUBEHATCH_METRICS_PORT", int, 0),
                post_events=read("KUBEHATCH_POST_EVENTS", _boolean, "true"),
            ),
        )


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())


def _string_map(text: str) -> dict[str, str]:
    value = json.loads(text)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError('not a JSON object of strings, like {"pool": "steps"}')
    return value


def _priority_map(text: str) -> dict[int, str]:
    value = _string_map(text)
    if not all(k in ("1", "2", "3") for k in value):
        raise ValueError('keys must be run priorities "1", "2" or "3", like {"3": "high"}')
    return {int(k): v for k, v in value.items()}


def _objects(text: str) -> tuple[dict[str, Any], ...]:
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError('not a JSON list of objects, like [{"key": "k", "operator": "Exists"}]')
    return tuple(value)


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError("not true or false")
    return text.lower() == "true"


class _Reader:
    """Reads one variable, with its default, and names it when its value is bad."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def __call__(self, name: str, parse: Callable[[str], T], default: T | str) -> T:
        raw = self.env.get(name)
        if raw is None or raw == "":
            return parse(default) if isinstance(default, str) else default
        try:
            return parse(raw)
        except ValueError as err:
            raise ValueError(f"{name}={raw!r} is not valid: {err}") from err
