"""A Python client for running workflows on the cluster: runs, cancellation, events.

The same operations as the ``kubehatch`` CLI (which is built on this module)::

    client = Client(namespace="users")
    run = client.run("two-step-workflow", {"username": "ada"})
    final = client.wait(run)
    print(final.status.phase)

It speaks to the Kubernetes API with the current kubeconfig (or the pod's
ServiceAccount when it runs in a cluster): kubehatch has no server of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from kubehatch._serialization import to_jsonable
from kubehatch.api import wire
from kubehatch.api.workflowevent import WorkflowEvent
from kubehatch.api.workflowrun import TriggeredBy, TriggerType, WorkflowRun
from kubehatch.errors import KubehatchError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

_EPOCH = datetime.fromtimestamp(0, UTC)


def _load_config() -> tuple[ApiClient, str]:
    """An API client and the namespace of the current context (or of the pod)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            namespace = f.read().strip()
    except (config.ConfigException, OSError):
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError, TypeError) as err:
            raise KubehatchError(
                f"no cluster to talk to ({err}); set KUBECONFIG or run inside a pod"
            ) from err
        _, context = config.list_kube_config_contexts()
        namespace = (context or {}).get("context", {}).get("namespace") or "default"
    return client.ApiClient(), namespace


def _as_input(value: Any) -> dict[str, Any]:
    data = to_jsonable(value, what="workflow input") if value is not None else {}
    if not isinstance(data, dict):
        raise KubehatchError(f"workflow input must be a JSON object, not {type(data).__name__}")
    return data


class EventClient:
    """Pushes WorkflowEvents: every Workflow listening to the key gets a run."""

    def __init__(self, parent: Client) -> None:
        self._parent = parent

    def push(
        self,
        key: str,
        payload: dict[str, Any] | BaseModel | None = None,
        *,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Create a WorkflowEvent; returns its name."""
        body = {
            "apiVersion": wire.API_VERSION,
            "kind": "WorkflowEvent",
            "metadata": {"generateName": "event-"},
            "spec": {
                "key": key,
                "payload": _as_input(payload),
                "additionalMetadata": metadata or {},
            },
        }
        WorkflowEvent.model_validate({**body, "metadata": {}})  # same checks as the API server
        return self._parent._create(wire.WORKFLOW_EVENTS, body)


@dataclasses.dataclass(frozen=True)
class StepChange:
    """A step changed phase (what ``wait`` reports to its callback)."""

    step: str
    phase: str
    attempts: int
    message: str | None


class Client:
    """Runs workflows on the cluster. All methods are synchronous."""

    def __init__(
        self, namespace: str | None = None, *, api_client: ApiClient | None = None
    ) -> None:
        from kubernetes import client

        if api_client is None:
            api_client, default_namespace = _load_config()
            namespace = namespace or default_namespace
        self.namespace = namespace or "default"
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._batch = client.BatchV1Api(api_client)
        self.event = EventClient(self)

    # --- runs ---------------------------------------------------------------------------
    def run(
        self,
        workflow: str,
        input: dict[str, Any] | BaseModel | None = None,
        *,
        name: str | None = None,
        scheduled_at: datetime | None = None,
    ) -> str:
        """Start a run of ``workflow`` (at ``scheduled_at``, if given); returns its name."""
        trigger = TriggerType.SCHEDULE if scheduled_at else TriggerType.MANUAL
        try:
            body = WorkflowRun.of(
                workflow,
                _as_input(input),
                name=name,
                triggered_by=TriggeredBy(type=trigger),
                scheduled_at=scheduled_at,
            ).to_manifest()
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            raise KubehatchError(f"cannot run workflow {workflow!r}: {problems}") from err
        return self._create(wire.WORKFLOW_RUNS, body)

    def get_run(self, name: str) -> WorkflowRun:
        return WorkflowRun.model_validate(self._get(wire.WORKFLOW_RUNS, name))

    def list_runs(self, workflow: str | None = None) -> list[WorkflowRun]:
        items = self._list(wire.WORKFLOW_RUNS)["items"]
        runs = [WorkflowRun.model_validate(i) for i in items]
        return [r for r in runs if workflow is None or r.spec.workflow_ref.name == workflow]

    def cancel(self, name: str) -> None:
        """Ask the operator to stop the run: its pods get SIGTERM, the run ends Cancelled."""
        self._patch(wire.WORKFLOW_RUNS, name, {"spec": {"cancel": True}})

    def watch_run(self, name: str, timeout: float | None = None) -> Iterator[WorkflowRun]:
        """Yield the run now and after every change, until it finishes or ``timeout`` passes."""
        from kubernetes import watch

        deadline = None if timeout is None else time.monotonic() + timeout
        run = self.get_run(name)
        yield run
        while not (run.status and run.status.phase and run.status.phase.finished):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise KubehatchError(f"run {name!r} did not finish within {timeout:.0f}s")
            stream = watch.Watch().stream(
                self._custom.list_namespaced_custom_object,
                *self._where(wire.WORKFLOW_RUNS),
                field_selector=f"metadata.name={name}",
                resource_version=run.metadata.get("resourceVersion"),
                timeout_seconds=int(min(remaining or 60, 60)) or 1,
            )
            for event in stream:
                if event["type"] == "DELETED":
                    raise KubehatchError(f"run {name!r} was deleted")
                run = WorkflowRun.model_validate(event["object"])
                yield run
                if run.status and run.status.phase and run.status.phase.finished:
                    return

    def wait(
        self,
        name: str,
        timeout: float | None = None,
        on_step: Callable[[StepChange], None] | None = None,
    ) -> WorkflowRun:
        """Block until the run finishes; ``on_step`` hears of every step transition."""
        seen: dict[str, tuple[str, int]] = {}
        run = None
        for run in self.watch_run(name, timeout):
            for step, status in (run.status.steps if run.status else {}).items():
                state = (status.phase.value, status.attempts)
                if seen.get(step) != state:
                    seen[step] = state
                    if on_step is not None:
                        on_step(StepChange(step, state[0], state[1], status.message))
        assert run is not None
        return run

    def logs(self, name: str, step: str | None = None) -> dict[str, str]:
        """Logs of the run's step pods (every attempt), by Job name."""
        selector = f"{wire.LABEL_RUN}={wire.label_value(name)}"
        if step:
            selector += f",{wire.LABEL_STEP}={wire.label_value(step)}"
        pods: list[tuple[datetime, str, str]] = []  # (created, pod, job), to sort by age
        for pod in self._core.list_namespaced_pod(self.namespace, label_selector=selector).items:
            meta = pod.metadata
            if meta is None or not meta.name:  # the API server always sets both
                continue
            job = (meta.labels or {}).get("job-name", meta.name)
            pods.append((meta.creation_timestamp or _EPOCH, meta.name, job))
        pods.sort(key=lambda found: found[0])
        return {
            job: self._core.read_namespaced_pod_log(pod, self.namespace) for _, pod, job in pods
        }

    # --- plumbing -------------------------------------------------------------------------
    def _where(self, plural: str) -> tuple[str, str, str, str]:
        return wire.GROUP, wire.VERSION, self.namespace, plural

    def _create(self, plural: str, body: dict[str, Any]) -> str:
        """Create the object; returns its name (given, or made by the API server)."""
        with self._api_errors("create", plural):
            answer = self._custom.create_namespaced_custom_object(*self._where(plural), body)
        name: str = _json_object(answer)["metadata"]["name"]
        return name

    def _get(self, plural: str, name: str) -> dict[str, Any]:
        with self._api_errors("get", plural, name):
            answer = self._custom.get_namespaced_custom_object(*self._where(plural), name)
        return _json_object(answer)

    def _list(self, plural: str) -> dict[str, Any]:
        with self._api_errors("list", plural):
            answer = self._custom.list_namespaced_custom_object(*self._where(plural))
        return _json_object(answer)

    def _patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._api_errors("patch", plural, name):
            answer = self._custom.patch_namespaced_custom_object(*self._where(plural), name, body)
        return _json_object(answer)

    @contextlib.contextmanager
    def _api_errors(self, verb: str, plural: str, name: str | None = None) -> Iterator[None]:
        """API errors as KubehatchErrors that say what failed and, for a 404, why."""
        from kubernetes.client.exceptions import ApiException

        try:
            yield
        except ApiException as err:
            what = f"{plural[:-1]} {name!r}" if name else plural
            if err.status == 404 and name:
                raise KubehatchError(f"{what} not found in namespace {self.namespace!r}") from err
            if err.status == 404:
                raise KubehatchError(
                    f"the cluster has no {plural}: install kubehatch's CRDs (helm install ...)"
                ) from err
            raise KubehatchError(
                f"{verb} {what} failed: {err.status} {err.reason}: {err.body}"
            ) from err


def _json_object(answer: object) -> dict[str, Any]:
    """The API server's answer to a custom object call: a JSON object."""
    if not isinstance(answer, dict):
        raise KubehatchError(f"unexpected answer from the API server: {answer!r:.200}")
    return answer
