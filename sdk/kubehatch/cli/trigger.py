"""``kubehatch trigger``: what a cron trigger's pod runs; creates the run for its time.

The operator makes one CronJob per cron schedule; its pod runs this command. The run
is named after the *scheduled* time, so a retried pod (or a second pod for the same
Job) makes no second run: the second create is a 409 and counts as success.

The pod learns its scheduled time from its Job's name. The CronJob controller names
each Job ``<cronjob>-<scheduled time in Unix minutes>`` and labels the pod with
``batch.kubernetes.io/job-name``, which the downward API passes in
``KUBEHATCH_JOB_NAME``. (The controller also annotates the Job with
``batch.kubernetes.io/cronjob-scheduled-timestamp``, but that annotation is not copied
to the pod, and the pod's ServiceAccount may not read Jobs.) Without a usable Job name,
e.g. a Job created by hand with ``kubectl create job --from=cronjob/...``, the time is
the latest time of the schedule at or before now.

A schedule of ``spec.triggers.zonedCrons`` comes with ``--time-zone``: the time is
matched against the schedule in that zone's wall time, as the CronJob controller read it.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from kubehatch.api import wire
from kubehatch.api.triggerspec import cron_trigger, repeated_wall_time, zone_problem
from kubehatch.api.workflowrun import TriggeredBy, TriggerType, WorkflowRun
from kubehatch.cli._common import arg, arguments
from kubehatch.errors import KubehatchError

NAME = "trigger"
HELP = "Create the WorkflowRun of one cron time (run by cron trigger pods, not by hand)."
TRACEBACKS = True  # in a pod, where nobody can rerun it with --debug


def time_from_job_name(job_name: str | None) -> datetime | None:
    """The scheduled time a CronJob's Job name encodes (its suffix, in Unix minutes)."""
    if not job_name or "-" not in job_name:
        return None
    suffix = job_name.rsplit("-", 1)[1]
    if not suffix.isdigit():
        return None
    try:
        return datetime.fromtimestamp(int(suffix) * 60, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def latest_time(schedule: str, now: datetime, zone: str | None = None) -> datetime:
    """The latest time of ``schedule`` (read in ``zone``, UTC if None) at or before
    ``now`` (to the minute), in UTC."""
    minute = now.astimezone(ZoneInfo(zone or "UTC")).replace(second=0, microsecond=0)
    if croniter.match(schedule, minute):
        return minute.astimezone(UTC)
    return croniter(schedule, minute).get_prev(datetime).astimezone(UTC)


def scheduled_time(
    schedule: str,
    job_name: str | None,
    explicit: datetime | None,
    now: datetime,
    zone: str | None = None,
) -> tuple[datetime, str]:
    """The time this pod fires for, and where it came from (for the log)."""
    if explicit is not None:
        return explicit.astimezone(UTC), "--scheduled-time"
    from_job = time_from_job_name(job_name)
    # A time that is not on the schedule means the name was not the controller's.
    if (
        from_job is not None
        and from_job <= now + timedelta(minutes=1)
        and croniter.match(schedule, from_job.astimezone(ZoneInfo(zone or "UTC")))
    ):
        return from_job, f"Job name {job_name}"
    return latest_time(schedule, now, zone), "the latest scheduled time before now"


def run_manifest(
    *,
    namespace: str,
    workflow: str,
    schedule: str,
    prefix: str,
    scheduled: datetime,
    zone: str | None = None,
) -> dict[str, Any]:
    stamp = wire.format_time(scheduled)
    source = schedule if zone is None else f"{schedule} ({zone})"
    return WorkflowRun.of(
        workflow,
        name=wire.cron_run_name(prefix, scheduled),
        namespace=namespace,
        triggered_by=TriggeredBy(type=TriggerType.CRON, source=f"{source} at {stamp}"),
        scheduled_at=scheduled.astimezone(UTC),
        labels={wire.LABEL_TRIGGER_TYPE: "cron"},
        annotations={wire.ANNOTATION_TRIGGER: cron_trigger(schedule, zone)},
    ).to_manifest()


def _time_arg(text: str) -> datetime:
    value = wire.parse_time(text)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time with a time zone, e.g. 2026-06-01T12:00:00Z"
        )
    return value


configure = arguments(
    arg("--workflow", required=True, help="the Workflow to run"),
    arg("--schedule", required=True, help="the cron schedule that fired (UTC)"),
    arg("--run-prefix", required=True, help="runs are named PREFIX-YYYYmmdd-HHMM (UTC)"),
    arg(
        "--scheduled-time",
        type=_time_arg,
        help="the time to fire for (default: from the Job's name, see $KUBEHATCH_JOB_NAME)",
    ),
    arg("--time-zone", help="the IANA time zone the schedule is read in (default: UTC)"),
    arg("-n", "--namespace", help="namespace of the run (default: $KUBEHATCH_NAMESPACE)"),
    epilog=(
        "Started by the CronJobs the operator makes for spec.triggers.crons. Creating "
        "the same time twice is harmless: the run's name comes from the time."
    ),
)


def create_run(body: dict[str, Any]) -> bool:
    """Create the run; False if it already exists (an earlier attempt made it)."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from kubehatch.client import explain

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError, TypeError) as err:
            raise KubehatchError(f"no cluster to talk to ({err})") from err
    api = client.CustomObjectsApi()
    namespace = body["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object(
            wire.GROUP, wire.VERSION, namespace, wire.WORKFLOW_RUNS, body
        )
    except (ApiException, HTTPError) as err:
        if isinstance(err, ApiException) and err.status == 409:
            return False
        host = api.api_client.configuration.host
        name = body["metadata"]["name"]
        raise explain(err, "create", wire.WORKFLOW_RUNS, name, namespace, host) from err
    return True


def run(args: argparse.Namespace) -> int:
    namespace = args.namespace or os.environ.get(wire.ENV_NAMESPACE)
    if not namespace:
        raise KubehatchError(f"no namespace: pass --namespace or set {wire.ENV_NAMESPACE}")
    if not croniter.is_valid(args.schedule):
        raise KubehatchError(f"--schedule {args.schedule!r} is not a valid cron schedule")
    zone = args.time_zone
    problem = zone_problem(zone) if zone is not None else None
    if problem is not None:
        raise KubehatchError(f"--time-zone {zone!r} is not a time zone: {problem}")
    job_name = os.environ.get(wire.ENV_JOB_NAME)
    now = datetime.now(UTC)
    when, origin = scheduled_time(args.schedule, job_name, args.scheduled_time, now, zone)
    if zone is not None and repeated_wall_time(when, ZoneInfo(zone)):
        local = when.astimezone(ZoneInfo(zone))
        print(f"no run: {local.isoformat()} repeats a wall time of {zone}, which fires once")
        return 0
    body = run_manifest(
        namespace=namespace,
        workflow=args.workflow,
        schedule=args.schedule,
        prefix=args.run_prefix,
        scheduled=when,
        zone=zone,
    )
    name = body["metadata"]["name"]
    created = create_run(body)
    verb = "created" if created else "already exists (an earlier attempt created it):"
    print(f"run {name} {verb} for {args.schedule!r} at {when.isoformat()} (time from {origin})")
    sys.stdout.flush()
    return 0
