"""The Job that runs one attempt of one step: a pure builder of its manifest.

The pod runs `kubehatch step` from the step's image. It reads the run's input and its
parents' outputs from mounted ConfigMaps, and hands its own output back by creating a
ConfigMap owned by the run: the only API right its ServiceAccount has. The pod meets
the "restricted" Pod Security Standard.
"""

from __future__ import annotations

from typing import Any

from kubehatch.api.workflow import WorkflowSpec
from kubehatch.durations import parse_duration
from kubehatch_operator import naming
from kubehatch_operator.decisions import StartAttempt
from kubehatch_operator.settings import Settings

INPUT_DIR = "/kubehatch/input"
PARENTS_DIR = "/kubehatch/parents"
STEP_COMMAND = ["kubehatch", "step"]


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{naming.GROUP}/v1alpha1",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def input_configmap(namespace: str, run: str, uid: str, input_json: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": naming.input_configmap(run),
            "namespace": namespace,
            "labels": {
                naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
                naming.LABEL_RUN: naming.label_value(run),
            },
            "ownerReferences": [owner_reference("WorkflowRun", run, uid)],
        },
        "data": {"input.json": input_json},
    }


def step_job(
    *,
    namespace: str,
    workflow: str,
    run: str,
    run_uid: str,
    spec: WorkflowSpec,
    start: StartAttempt,
    settings: Settings,
    step_name: str | None = None,
) -> dict[str, Any]:
    """The Job of one attempt; `step_name` overrides the step's name (the key pseudo-step)."""
    step = start.step
    name = step_name or step.name
    labels = naming.step_labels(workflow, run, name, start.attempt)
    env = [
        {"name": "KUBEHATCH_NAMESPACE", "value": namespace},
        {"name": "KUBEHATCH_WORKFLOW", "value": workflow},
        {"name": "KUBEHATCH_RUN", "value": run},
        {"name": "KUBEHATCH_RUN_UID", "value": run_uid},
        {"name": "KUBEHATCH_STEP", "value": name},
        {"name": "KUBEHATCH_ACTION", "value": spec.qualified_action(step)},
        {"name": "KUBEHATCH_ATTEMPT", "value": str(start.attempt)},
        {"name": "KUBEHATCH_PARENTS", "value": ",".join(step.parents)},
        {
            "name": "KUBEHATCH_OUTPUT_CONFIGMAP",
            "value": naming.output_configmap(run, name, start.attempt),
        },
        {"name": "KUBEHATCH_INPUT_DIR", "value": INPUT_DIR},
        {"name": "KUBEHATCH_PARENTS_DIR", "value": PARENTS_DIR},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        *([{"name": "KUBEHATCH_WORKER", "value": spec.worker}] if spec.worker else []),
        *({"name": e.name, "value": e.value} for e in step.env),
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "input", "configMap": {"name": naming.input_configmap(run)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    mounts = [
        {"name": "input", "mountPath": INPUT_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if start.parents:
        volumes.append(
            {
                "name": "parents",
                "projected": {
                    "sources": [
                        {
                            "configMap": {
                                "name": cm,
                                "items": [{"key": "output.json", "path": f"{parent}.json"}],
                                # A missing output reads as None, not a pod stuck mounting it.
                                "optional": True,
                            }
                        }
                        for parent, cm in sorted(start.parents.items())
                    ]
                },
            }
        )
        mounts.append({"name": "parents", "mountPath": PARENTS_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": "step",
        "image": spec.step_image(step),
        "imagePullPolicy": "IfNotPresent",
        "command": STEP_COMMAND,
        "env": env,
        "volumeMounts": mounts,
        "terminationMessagePolicy": "File",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if step.resources is not None:
        container["resources"] = step.resources.to_dict()
    job_spec: dict[str, Any] = {
        # Retries are the operator's: one Job per attempt keeps every attempt's logs.
        "backoffLimit": 0,
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": spec.service_account_name or settings.step_service_account,
                "terminationGracePeriodSeconds": settings.step_grace_seconds,
                "enableServiceLinks": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": settings.step_run_as_user,
                    "runAsGroup": settings.step_run_as_user,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if step.timeout:
        job_spec["activeDeadlineSeconds"] = max(
            1, int(parse_duration(step.timeout).total_seconds())
        )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": start.job_name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference("WorkflowRun", run, run_uid)],
        },
        "spec": job_spec,
    }
