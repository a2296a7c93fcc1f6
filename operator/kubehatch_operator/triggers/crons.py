"""Cron schedules: one CronJob per ``spec.triggers.crons`` entry, owned by the Workflow.

The CronJob's pod runs ``kubehatch trigger`` from the operator image with a
ServiceAccount that may only create WorkflowRuns. The run is named after the scheduled
time (the pod reads it from its Job's name), so a retried pod never makes a second run.
Schedules in ``spec.triggers.crons`` are read in UTC, as the API documents; those in
``spec.triggers.zonedCrons`` in their zone (the CronJob's ``spec.timeZone``: the CronJob
controller follows the zone's daylight-saving changes). The zone is part of a schedule's
identity: its CronJob's name, its runs' prefix and its key in status.lastTriggered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from kubehatch.api import wire
from kubehatch.api.triggerspec import cron_trigger, zone_problem, zoned_times
from kubehatch.api.wire import parse_time
from kubehatch_operator.triggers.model import CronEntry, WorkflowInfo

TIME_ZONE = "Etc/UTC"
STARTING_DEADLINE_SECONDS = 300
"""A time missed by more than this (operator-independent: the CronJob controller) is skipped."""

_MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a schedule both croniter and Kubernetes accept, or None."""
    text = expression.strip()
    if text.startswith("@"):
        if text not in _MACROS:
            return f"unknown macro; use one of {', '.join(sorted(_MACROS))}"
        return None
    fields = text.split()
    if len(fields) != 5:
        return (
            f"it has {len(fields)} field(s), not the five 'minute hour day-of-month month "
            "day-of-week' (seconds and years are not supported)"
        )
    try:
        croniter(text)
    except (ValueError, KeyError) as err:  # croniter's errors derive from ValueError
        return str(err) or type(err).__name__
    # croniter extensions that the CronJob controller (robfig/cron) rejects. Day names
    # (WED) may contain a W, so W is only looked for in the day-of-month field.
    day_of_month, day_of_week = fields[2].upper(), fields[4].upper()
    if "#" in text or "L" in day_of_month or "W" in day_of_month or "L" in day_of_week:
        return "'L', 'W' and '#' are croniter extensions that Kubernetes CronJobs do not support"
    return None


def _entries(crons: Iterable[str | CronEntry]) -> list[CronEntry]:
    """Entries from a mix of entries and plain (UTC) schedules, placed in spec.triggers.crons."""
    return [
        c if isinstance(c, CronEntry) else CronEntry(c, None, f"spec.triggers.crons[{i}]")
        for i, c in enumerate(crons)
    ]


def cron_problems(crons: Iterable[str | CronEntry]) -> list[str]:
    """One message per bad schedule, naming the field, the expression and the fix."""
    problems = []
    for entry in _entries(crons):
        why = cron_problem(entry.schedule)
        if why is not None:
            where = entry.where if entry.zone is None else f"{entry.where}.schedule"
            zone = "UTC" if entry.zone is None else f"read in {entry.zone}"
            problems.append(
                f"{where}: {entry.schedule!r} is not a valid cron schedule: "
                f"{why}; write five fields 'minute hour day-of-month month day-of-week' "
                f"({zone}), e.g. '*/5 * * * *'"
            )
    return problems


def zone_problems(crons: Iterable[str | CronEntry]) -> list[str]:
    """One message per unknown time zone (the CRD checks only the length of a zone)."""
    problems = []
    for entry in _entries(crons):
        why = None if entry.zone is None else zone_problem(entry.zone)
        if why is not None:
            problems.append(f"{entry.where}.timeZone: {entry.zone!r} is not a time zone: {why}")
    return problems


def schedule_hash(expression: str, zone: str | None = None) -> str:
    """The schedule's short hash; a zoned schedule's covers its zone too."""
    return wire.digest(expression if zone is None else f"{expression}\n{zone}", 8)


def cronjob_name(workflow: str, expression: str, zone: str | None = None) -> str:
    name = f"{workflow}-cron-{schedule_hash(expression, zone)}"
    return wire.bounded(name, wire.MAX_CRONJOB_NAME)


def run_prefix(workflow: str, expression: str, zone: str | None = None) -> str:
    """Cron runs are named <prefix>-<YYYYmmdd-HHMM> (see ``kubehatch trigger``)."""
    return f"{workflow}-cron-{schedule_hash(expression, zone)}"


@dataclass(frozen=True)
class TriggerPod:
    """How the operator runs trigger pods (from its settings)."""

    image: str | None
    service_account: str = "kubehatch-trigger"
    run_as_user: int = 65532


def cronjob_manifest(
    workflow: WorkflowInfo, expression: str, pod: TriggerPod, zone: str | None = None
) -> dict[str, Any]:
    """The CronJob for one schedule of one workflow, read in ``zone`` (UTC when None;
    ``pod.image`` must be set)."""
    assert pod.image, "trigger image required"
    labels = {
        wire.LABEL_MANAGED_BY: wire.MANAGED_BY,
        wire.LABEL_WORKFLOW: wire.label_value(workflow.name),
        wire.LABEL_TRIGGER_TYPE: "cron",
    }
    # The Jobs and pods are not managed-by kubehatch: the step-Job watch must not see them.
    pod_labels = {k: v for k, v in labels.items() if k != wire.LABEL_MANAGED_BY}
    restricted = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    container = {
        "name": "trigger",
        "image": pod.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(wire.TRIGGER_COMMAND),
        "args": [
            "--workflow", workflow.name,
            "--schedule", expression,
            "--run-prefix", run_prefix(workflow.name, expression, zone),
            *(["--time-zone", zone] if zone is not None else []),
        ],
        "env": [
            {
                "name": wire.ENV_NAMESPACE,
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {
                "name": wire.ENV_JOB_NAME,
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
                },
            },
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            **restricted,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }  # fmt: skip
    spec: dict[str, Any] = {
        "schedule": expression,
        "timeZone": zone or TIME_ZONE,
        "suspend": workflow.suspend,
        # Each scheduled time is its own run (named after the time): no reason to skip one.
        "concurrencyPolicy": "Allow",
        "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
        "successfulJobsHistoryLimit": 1,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {
            "metadata": {"labels": pod_labels},
            "spec": {
                # A retried pod recreates the same run name: 409, no second run.
                "backoffLimit": 4,
                "activeDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": pod.service_account,
                        "enableServiceLinks": False,
                        "securityContext": {
                            **restricted,
                            "runAsUser": pod.run_as_user,
                            "runAsGroup": pod.run_as_user,
                        },
                        "containers": [container],
                    },
                },
            },
        },
    }
    annotations: dict[str, str] = {
        wire.ANNOTATION_SCHEDULE: expression,
        wire.ANNOTATION_TRIGGER: cron_trigger(expression, zone),
        wire.ANNOTATION_RUN_PREFIX: run_prefix(workflow.name, expression, zone),
    }
    body: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": cronjob_name(workflow.name, expression, zone),
            "namespace": workflow.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [wire.owner_reference("Workflow", workflow.name, workflow.uid)],
        },
        "spec": spec,
    }
    fingerprint = json.dumps(
        [labels, annotations, body["metadata"]["ownerReferences"], spec], sort_keys=True
    )
    annotations[wire.ANNOTATION_SPEC_HASH] = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return body


def desired_cronjobs(workflow: WorkflowInfo, pod: TriggerPod) -> list[dict[str, Any]] | None:
    """The workflow's CronJobs: none while any schedule is invalid.

    None (leave the CronJobs alone) when the operator has no trigger image: a
    misconfigured operator must not delete the CronJobs that a configured one made.
    """
    if not pod.image:
        return None
    entries = workflow.cron_entries
    if cron_problems(entries) or zone_problems(entries):
        return []
    unique = dict.fromkeys(entry.identity for entry in entries)
    return [cronjob_manifest(workflow, expression, pod, zone) for expression, zone in unique]


@dataclass
class CronPlan:
    create: list[dict[str, Any]] = field(default_factory=list)
    replace: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.replace or self.delete)


def _spec_hash(body: dict[str, Any]) -> str | None:
    return ((body.get("metadata") or {}).get("annotations") or {}).get(wire.ANNOTATION_SPEC_HASH)


def plan_cronjobs(desired: list[dict[str, Any]], existing: list[dict[str, Any]]) -> CronPlan:
    """Create the missing CronJobs, replace the changed ones, delete those no longer wanted.

    ``existing`` is the workflow's CronJobs (by label). A changed schedule is a new name
    (the name hashes the schedule), so it shows up as one create and one delete.
    """
    plan = CronPlan()
    current = {c["metadata"]["name"]: c for c in existing}
    for body in desired:
        name = body["metadata"]["name"]
        found = current.get(name)
        if found is None:
            plan.create.append(body)
        elif _spec_hash(found) != _spec_hash(body):
            replacement = {
                **body,
                "metadata": {
                    **body["metadata"],
                    "resourceVersion": found["metadata"].get("resourceVersion"),
                },
            }
            plan.replace.append(replacement)
    wanted = {b["metadata"]["name"] for b in desired}
    plan.delete = sorted(name for name in current if name not in wanted)
    return plan


def next_cron_times(
    crons: Iterable[str | CronEntry], now: datetime, count: int = 1
) -> list[datetime]:
    """The next ``count`` times of each valid schedule after ``now``, in UTC (a zoned
    schedule's computed in its zone)."""
    return [t.astimezone(UTC) for _, times in cron_times(crons, now, count) for t in times]


def cron_times(
    crons: Iterable[str | CronEntry], now: datetime, count: int
) -> list[tuple[CronEntry, list[datetime]]]:
    """Each valid schedule (once) with its next ``count`` times after ``now``, in its zone."""
    found: dict[tuple[str, str | None], tuple[CronEntry, list[datetime]]] = {}
    for entry in _entries(crons):
        if entry.identity in found or cron_problem(entry.schedule) is not None:
            continue
        if entry.zone is not None and zone_problem(entry.zone) is not None:
            continue
        times = zoned_times(entry.schedule, entry.zone, now, count)
        found[entry.identity] = (entry, times)
    return list(found.values())


def last_cron_run(cronjob: dict[str, Any]) -> tuple[str, str] | None:
    """(trigger, run) for the last scheduled time whose pod succeeded, from CronJob status.

    The run's name is a function of the scheduled time, so it is known without reading
    runs: ``lastScheduleTime`` is the latest scheduled time, and a ``lastSuccessfulTime``
    at or after it says that its pod finished, i.e. created the run.
    """
    annotations = (cronjob.get("metadata") or {}).get("annotations") or {}
    trigger = annotations.get(wire.ANNOTATION_TRIGGER)
    prefix = annotations.get(wire.ANNOTATION_RUN_PREFIX)
    status = cronjob.get("status") or {}
    scheduled = parse_time(status.get("lastScheduleTime"))
    succeeded = parse_time(status.get("lastSuccessfulTime"))
    if not (trigger and prefix and scheduled and succeeded) or succeeded < scheduled:
        return None
    return trigger, wire.cron_run_name(prefix, scheduled)
