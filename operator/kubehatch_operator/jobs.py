"""The Job that runs one attempt of one step: a pure builder of its manifest.

The pod runs `kubehatch step` from the step's image. It reads the run's input from a
mounted file (its own annotation through the downward API, or, when large, a ConfigMap)
and its parents' outputs from mounted ConfigMaps, and hands its own output back by creating a
ConfigMap owned by the run (and, for a large output, its parts): the only API right its
ServiceAccount has. The pod meets the "restricted" Pod Security Standard.

A parent's output is projected into the parents volume from its head ConfigMap (each of
its possible keys: plain, compressed, or a split output's manifest) and from each of its
parts, under the file names `kubehatch.api.outputs` gives; the step pod decodes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubehatch.api import outputs, stepenv, wire
from kubehatch.api.workflow import MIN_PRIORITY, WorkflowSpec
from kubehatch.durations import parse_duration
from kubehatch_operator.model import StartAttempt
from kubehatch_operator.settings import StepSettings


def step_job(
    *,
    namespace: str,
    workflow: str,
    run: str,
    run_uid: str,
    spec: WorkflowSpec,
    start: StartAttempt,
    settings: StepSettings,
    priority: int = MIN_PRIORITY,
    output_parts: Mapping[str, int] | None = None,
    additional_metadata: Mapping[str, str] | None = None,
    input_json: str | None = None,
) -> dict[str, Any]:
    """The Job of one attempt of a step (or of the concurrency key pseudo-step), for a run
    of ``priority``. ``output_parts`` gives the number of parts of parents' outputs, by
    output ConfigMap (0: not split), as their heads announced them; a parent's output not
    in it gets every part an output may have (`outputs.MAX_PARTS`, each optional).
    ``input_json`` is the run's input when it travels in the pod's annotation; without it
    the pod mounts the run's input ConfigMap."""
    step = start.step
    step_env = attempt_env(
        namespace=namespace,
        workflow=workflow,
        run=run,
        run_uid=run_uid,
        spec=spec,
        start=start,
        additional_metadata=additional_metadata,
    )
    labels = step_env.labels
    env = [
        # `$$` is how a literal `$` survives the kubelet's `$(VAR)` expansion: items, the
        # failures and the metadata are the user's data.
        *({"name": k, "value": v.replace("$", "$$")} for k, v in step_env.to_env().items()),
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        *(e.to_container() for e in step.env),
    ]
    volumes = [
        {"name": "input", **_input_source(run, run_uid, input_json)},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    mounts = [
        {"name": "input", "mountPath": str(wire.INPUT_DIR), "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if start.parents:
        known = output_parts or {}
        sources = [
            source
            for parent, cm in sorted(start.parents.items())
            for source in parent_sources(parent, cm, known.get(cm))
        ]
        volumes.append({"name": "parents", "projected": {"sources": sources}})
        mounts.append({"name": "parents", "mountPath": str(wire.PARENTS_DIR), "readOnly": True})
    container: dict[str, Any] = {
        "name": "step",
        "image": spec.step_image(step),
        "imagePullPolicy": "IfNotPresent",
        "command": list(wire.STEP_COMMAND),
        "env": env,
        "volumeMounts": mounts,
        "terminationMessagePolicy": "File",
        "securityContext": dict(RESTRICTED_CONTAINER),
    }
    if step.resources is not None:
        container["resources"] = step.resources.to_dict()
    job_spec: dict[str, Any] = {
        # Retries are the operator's: one Job per attempt keeps every attempt's logs.
        "backoffLimit": 0,
        # A node drain, an eviction or a preemption is not the step's failure: the Job
        # makes a new pod, once the old one is gone (the default with this policy).
        "podFailurePolicy": {
            "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
        },
        "template": {
            "metadata": {
                "labels": labels,
                **({"annotations": {wire.ANNOTATION_INPUT: input_json}} if input_json else {}),
            },
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": spec.service_account_name or settings.service_account,
                "terminationGracePeriodSeconds": settings.grace_seconds,
                "enableServiceLinks": False,
                "securityContext": restricted_pod(settings.run_as_user),
                "containers": [container],
                "volumes": volumes,
                **(
                    {"nodeSelector": dict(settings.node_selector)} if settings.node_selector else {}
                ),
                **(
                    {"tolerations": [dict(t) for t in settings.tolerations]}
                    if settings.tolerations
                    else {}
                ),
                **(
                    {"priorityClassName": settings.priority_classes[priority]}
                    if priority in settings.priority_classes
                    else {}
                ),
            },
        },
    }
    job_labels = labels
    metadata_extra: dict[str, Any] = {}
    if annotations := rate_limit_annotations(start):
        metadata_extra["annotations"] = annotations
    if settings.kueue_queue is not None:
        # Kueue admits the Job (unsuspends it) when the queue's quota has room.
        job_spec["suspend"] = True
        job_labels = {**labels, KUEUE_QUEUE_LABEL: settings.kueue_queue}
    # The step's own timeout runs in its pod, from the start of its code (`kubehatch
    # step` stops it, exit 124). The deadline is a backstop: start-up, the timeout and
    # the grace period, so that a pod that hangs past all of them is stopped anyway.
    if step.timeout:
        start_limit = _seconds(step.start_timeout) or DEFAULT_START_SECONDS
        timeout = _seconds(step.timeout) or 0
        job_spec["activeDeadlineSeconds"] = start_limit + timeout + 2 * settings.grace_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": start.job_name,
            "namespace": namespace,
            "labels": job_labels,
            **metadata_extra,
            "ownerReferences": [wire.owner_reference("WorkflowRun", run, run_uid)],
        },
        "spec": job_spec,
    }


RESTRICTED_CONTAINER: Mapping[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""A container of the "restricted" Pod Security Standard, with a read-only root."""


def restricted_pod(user: int) -> dict[str, Any]:
    """The pod security context of step and worker pods: never root."""
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def attempt_env(
    *,
    namespace: str,
    workflow: str,
    run: str,
    run_uid: str,
    spec: WorkflowSpec,
    start: StartAttempt,
    additional_metadata: Mapping[str, str] | None = None,
) -> stepenv.StepEnv:
    """What one attempt's code is told: a step pod's environment, a WorkerTask's env."""
    step = start.step
    return stepenv.StepEnv(
        namespace=namespace,
        workflow=workflow,
        run=run,
        run_uid=run_uid,
        step=start.step_name,
        action=spec.qualified_action(step),
        attempt=start.attempt,
        # The parents whose outputs it gets: with parentRule AllDone or AnySucceeded, only
        # those that succeeded.
        parents=tuple(p for p in step.parents if p in start.parents),
        output_configmap=wire.output_configmap_name(start.job_name),
        worker=spec.worker,
        timeout_seconds=_seconds(step.timeout),
        failures=json.dumps(start.failures, sort_keys=True) if start.failures else None,
        additional_metadata=json.dumps(dict(additional_metadata), sort_keys=True)
        if additional_metadata
        else None,
        item=start.item,
        item_value=start.item_value,
    )


def rate_limit_annotations(start: StartAttempt) -> dict[str, str]:
    """What rebuilds the rate limits' log after a restart: the units the attempt took."""
    if not start.rate_limits:
        return {}
    return {wire.ANNOTATION_RATE_LIMITS: json.dumps([list(take) for take in start.rate_limits])}


def _input_source(run: str, run_uid: str, input_json: str | None) -> dict[str, Any]:
    """The volume whose ``input.json`` is the run's input: the pod's own annotation through
    the downward API (no API object, no call: the kubelet writes it), else the input
    ConfigMap. The same file either way, so every step image reads it as it always has,
    and no ``$(VAR)`` in the input is expanded, as it would be in an environment value."""
    if input_json is None:
        return {"configMap": {"name": wire.input_configmap_name(run, run_uid)}}
    path = f"metadata.annotations['{wire.ANNOTATION_INPUT}']"
    return {"downwardAPI": {"items": [{"path": wire.INPUT_KEY, "fieldRef": {"fieldPath": path}}]}}


def parent_sources(parent: str, configmap: str, parts: int | None) -> list[dict[str, Any]]:
    """The projected sources of one parent's output: its head ConfigMap, each key it may
    hold (missing keys are skipped), then its parts (``parts`` of them, or every part an
    output may have when that is not known). All optional: a missing output reads as
    None, not a pod stuck mounting it; a missing part is the step pod's error to tell."""
    head = {
        "configMap": {
            "name": configmap,
            "items": [
                {"key": key, "path": path} for key, path in outputs.head_files(parent).items()
            ],
            "optional": True,
        }
    }
    count = outputs.MAX_PARTS if parts is None else parts
    return [
        head,
        *(
            {
                "configMap": {
                    "name": outputs.part_name(configmap, number),
                    "items": [{"key": outputs.PART_KEY, "path": outputs.part_file(parent, number)}],
                    "optional": True,
                }
            }
            for number in range(1, count + 1)
        ),
    ]


KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

DEFAULT_START_SECONDS = 600
"""Ten minutes to schedule the pod and pull its image, unless the step says otherwise."""


def _seconds(duration: str | None) -> int | None:
    return max(1, int(parse_duration(duration).total_seconds())) if duration else None
