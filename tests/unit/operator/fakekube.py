"""An in-memory stand-in for the operator's API layer, for controller and reconciler tests."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubernetes.client.exceptions import ApiException

STEPS = [{"name": "one", "action": "svc:one"}]


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the API server applies a merge patch."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class FakeKube:
    """The operator's API (`kubehatch_operator.kube.Kube`), in memory.

    Every write is also appended to ``writes`` as (verb, resource, name), so that a test
    can assert exactly what one reconcile sent to the API server.
    """

    def __init__(self) -> None:
        self.version = 1
        self.writes: list[tuple[str, str, str]] = []
        self.reads: list[tuple[str, str, str]] = []
        self.workflow_lists = 0
        self.configmaps: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, Any] = {}
        self.terminations: dict[str, tuple[str | None, int | None]] = {}
        """By Job uid: what its pod's termination message and exit code were."""
        self.waiting: dict[str, str] = {}
        self.refuse: dict[str, tuple[int, str]] = {}
        """By object name: the API server refuses to create it (status, message)."""
        """By Job uid: why its pod has not started."""
        self.runs: dict[str, dict[str, Any]] = {}
        self.run_creates = 0
        self.workflows: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.cronjobs: dict[str, dict[str, Any]] = {}
        self.cronjob_lists = 0
        self.posted: list[tuple[str, str, str]] = []
        self.reject_cronjobs = False

    def _bump(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(body)

    def add_workflow(self, name: str, suspend: bool = False, **triggers: Any) -> dict[str, Any]:
        body = {
            "apiVersion": "kubehatch.dev/v1alpha1",
            "kind": "Workflow",
            "metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {"image": "img", "steps": STEPS, "triggers": triggers, "suspend": suspend},
        }
        self.workflows[name] = body
        return self._bump(body)

    def add_event(self, name: str, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": "kubehatch.dev/v1alpha1",
            "kind": "WorkflowEvent",
            "metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {"key": key, "payload": payload},
        }
        self.events[name] = body
        return self._bump(body)

    async def create_run(self, body: dict[str, Any]) -> dict[str, Any] | None:
        self.writes.append(("create", "workflowruns", body["metadata"]["name"]))
        self.run_creates += 1
        name = body["metadata"]["name"]
        if name in self.runs:
            return None
        self.runs[name] = body
        return body

    async def list_workflows(self, namespace: str, not_older_than: int) -> list[dict[str, Any]]:
        self.workflow_lists += 1
        return [copy.deepcopy(w) for w in self.workflows.values()]

    def add_run(self, body: dict[str, Any]) -> dict[str, Any]:
        self.runs[body["metadata"]["name"]] = body
        return self._bump(body)

    def _collection(self, plural: str) -> dict[str, dict[str, Any]]:
        return {
            "workflows": self.workflows,
            "workflowevents": self.events,
            "workflowruns": self.runs,
        }[plural]

    async def patch_status(self, plural: str, ns: str, name: str, patch: dict) -> dict | None:
        self.writes.append(("patch", f"{plural}/status", name))
        body = self._collection(plural).get(name)
        if body is None:
            return None
        body["status"] = merge(body.get("status") or {}, patch)
        return self._bump(body)

    async def delete_custom(self, plural: str, ns: str, name: str, uid: str | None = None) -> None:
        self.writes.append(("delete", plural, name))
        found = self._collection(plural).get(name)
        if found is not None and (uid is None or found["metadata"]["uid"] == uid):
            del self._collection(plural)[name]

    async def create_configmap(self, body: dict[str, Any]) -> bool:
        name = body["metadata"]["name"]
        self.writes.append(("create", "configmaps", name))
        return self.configmaps.setdefault(name, copy.deepcopy(body)) is not None

    async def create_job(self, body: dict[str, Any]) -> bool:
        name = body["metadata"]["name"]
        self.writes.append(("create", "jobs", name))
        if name in self.refuse:
            status, message = self.refuse[name]
            refusal = ApiException(status=status, reason="Refused")
            refusal.body = json.dumps({"kind": "Status", "message": message})
            raise refusal
        if name in self.jobs:
            return False
        self.jobs[name] = copy.deepcopy(body)
        return True

    async def delete_job(self, ns: str, name: str) -> None:
        self.writes.append(("delete", "jobs", name))
        self.jobs.pop(name, None)

    async def active_jobs(self, ns: str, run: str) -> list[str]:
        return sorted(
            name
            for name, job in self.jobs.items()
            if job["metadata"]["labels"].get("kubehatch.dev/run") == run
            and not (job.get("status") or {}).get("conditions")
        )

    async def read_run_input(self, ns: str, name: str) -> dict[str, Any]:
        self.reads.append(("get", "workflowruns", name))
        return dict((self.runs[name].get("spec") or {}).get("input") or {})

    async def read_output(self, ns: str, configmap: str) -> Any:
        return self.outputs[configmap]

    async def termination_message(self, ns: str, job_uid: str) -> tuple[str | None, int | None]:
        return self.terminations.get(job_uid, (None, None))

    async def why_waiting(self, ns: str, job_uid: str) -> str | None:
        return self.waiting.get(job_uid)

    async def list_cronjobs(self, ns: str, workflow: str) -> list[dict[str, Any]]:
        self.cronjob_lists += 1
        return [
            copy.deepcopy(c)
            for c in self.cronjobs.values()
            if c["metadata"]["labels"]["kubehatch.dev/workflow"] == workflow
        ]

    async def create_cronjob(self, body: dict[str, Any]) -> bool:
        if self.reject_cronjobs:
            raise ApiException(status=422, reason="Unprocessable Entity")
        self.writes.append(("create", "cronjobs", body["metadata"]["name"]))
        self.cronjobs[body["metadata"]["name"]] = self._bump(copy.deepcopy(body))
        return True

    async def replace_cronjob(self, body: dict[str, Any]) -> None:
        self.writes.append(("replace", "cronjobs", body["metadata"]["name"]))
        self.cronjobs[body["metadata"]["name"]] = self._bump(copy.deepcopy(body))

    async def delete_cronjob(self, ns: str, name: str) -> None:
        self.writes.append(("delete", "cronjobs", name))
        self.cronjobs.pop(name, None)

    async def post_event(self, involved: dict, type_: str, reason: str, message: str) -> None:
        self.posted.append((involved["metadata"]["name"], type_, reason))
