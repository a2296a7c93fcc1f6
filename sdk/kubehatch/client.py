"""A Python client for running workflows on the cluster: runs, cancellation, events.

The same operations as the ``kubehatch`` CLI (which is built on this module)::

    client = Client(namespace="users")
    run = client.run("two-step-workflow", {"username": "ada"})
    final = client.wait(run)
    print(final.status.phase)

It speaks to the Kubernetes API with the current kubeconfig (or the pod's ServiceAccount
in a cluster): kubehatch has no server of its own. Failures to talk to it are
:class:`ApiError`: one line saying what failed and what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from kubehatch import _approvals, _events, _pausing, _reruns
from kubehatch._apierrors import ApiError, explain, one_line
from kubehatch._serialization import to_jsonable
from kubehatch._steplogs import PodLog, step_logs
from kubehatch._submit import check_event_payload, check_run_input
from kubehatch.api import wire
from kubehatch.api.workflowrun import TriggeredBy, TriggerType, WorkflowRun
from kubehatch.errors import KubehatchError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

_EPOCH = datetime.fromtimestamp(0, UTC)
EventInput = _events.EventInput  # what client.event.push_many takes

MAX_INPUT_BYTES = wire.MAX_INPUT_BYTES  # the largest run input (see there)


def _load_config() -> tuple[ApiClient, str]:
    """An API client and the namespace of the current context (or of the pod)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            namespace = f.read().strip()
    except (config.ConfigException, OSError):
        kubeconfig = os.environ.get("KUBECONFIG") or "~/.kube/config"  # now, not at import
        try:
            config.load_kube_config(config_file=kubeconfig)
            _, context = config.list_kube_config_contexts(config_file=kubeconfig)
        except Exception as err:  # a missing, unreadable or malformed kubeconfig
            reason = one_line(str(err)) or type(err).__name__
            raise KubehatchError(f"no cluster to talk to ({reason}); set KUBECONFIG") from err
        namespace = (context or {}).get("context", {}).get("namespace") or "default"
    return client.ApiClient(), namespace


def _as_input(value: Any, what: str = "workflow input") -> dict[str, Any]:
    data = to_jsonable(value, what=what) if value is not None else {}
    if not isinstance(data, dict):
        raise KubehatchError(f"{what} must be a JSON object, not {type(data).__name__}")
    size = len(json.dumps(data).encode())  # as the operator writes it into the ConfigMap
    if size > MAX_INPUT_BYTES:
        raise KubehatchError(
            f"the {what} is {size} bytes of JSON ({size / 2**20:.1f} MiB), over the limit of "
            f"{MAX_INPUT_BYTES} bytes: a run's input is kept in a ConfigMap (1 MiB at most); "
            "pass a reference to the data instead: an object-storage URL, a PVC path"
        )
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
        priority: int | None = None,
    ) -> str:
        """Create a WorkflowEvent; returns its name (it starts whatever listens, if any).
        ``priority`` (1 low to 3 high) is that of the runs it starts."""
        data = _as_input(payload, "event payload (the runs' input)")
        body = _events.event_body(key, data, metadata, priority)
        check_event_payload(key, self._parent._workflows(), data, metadata)
        return self._parent._create(wire.WORKFLOW_EVENTS, body)

    def push_many(self, events: Iterable[_events.EventInput]) -> list[_events.Pushed]:
        """Push several events (``EventInput(key, data, metadata, priority)``): all are
        checked first (one invalid one pushes none), then created concurrently; a result
        per event, in order, with its WorkflowEvent's name or the API server's refusal."""
        return _events.push_many(
            list(events),
            workflows=self._parent._workflows(),
            as_input=_as_input,
            check=check_event_payload,
            create=lambda body: self._parent._create(wire.WORKFLOW_EVENTS, body),
        )


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
        self.api_client = api_client
        """The kubernetes ApiClient it talks through (for calls of other APIs)."""
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._host = str(getattr(api_client.configuration, "host", "") or "the API server")
        self.event = EventClient(self)

    # --- runs ---------------------------------------------------------------------------
    def run(
        self,
        workflow: str,
        input: dict[str, Any] | BaseModel | None = None,
        *,
        name: str | None = None,
        scheduled_at: datetime | None = None,
        priority: int | None = None,
        additional_metadata: dict[str, str] | None = None,
    ) -> str:
        """Start a run of ``workflow`` (at ``scheduled_at``, if given); returns its name.

        ``priority`` (1 low to 3 high) orders it among queued runs; ``additional_metadata``
        is readable by the Workflow's concurrency expressions.

        Creates nothing if the input is too big, if it does not fit the Workflow's
        ``spec.inputSchema`` (:class:`~kubehatch.api.inputschema.InvalidInputError`, naming
        each field), or if the Workflow does not exist and the run would start now (a run
        scheduled for later may come before its Workflow).
        """
        trigger = TriggerType.SCHEDULE if scheduled_at else TriggerType.MANUAL
        data = _as_input(input)
        try:
            body = WorkflowRun.of(
                workflow,
                data,
                name=name,
                triggered_by=TriggeredBy(type=trigger),
                scheduled_at=scheduled_at,
                priority=priority,
                additional_metadata=additional_metadata,
            ).to_manifest()
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            raise KubehatchError(f"cannot run workflow {workflow!r}: {problems}") from err
        if scheduled_at is None or scheduled_at <= datetime.now(scheduled_at.tzinfo):
            found = self._require_workflow(workflow)
        else:
            found = self._workflow_if_any(workflow)
        check_run_input(workflow, found, data)  # as the operator will when the run starts
        return self._create(wire.WORKFLOW_RUNS, body)

    def _workflow_if_any(self, workflow: str) -> dict[str, Any] | None:
        """The Workflow, or None if it does not exist (yet) or may not be read."""
        try:
            return self._get(wire.WORKFLOWS, workflow)
        except ApiError as err:
            if err.status in (403, 404):
                return None
            raise

    def _workflows(self) -> list[dict[str, Any]]:
        """The namespace's Workflows; none when they may not be listed."""
        try:
            return list(self._list(wire.WORKFLOWS)["items"])
        except ApiError as err:
            if err.status == 403:
                return []
            raise

    def _require_workflow(self, workflow: str) -> dict[str, Any] | None:
        """The Workflow (None if it may not be read); ApiError 404 saying so if it is missing."""
        try:
            return self._get(wire.WORKFLOWS, workflow)
        except ApiError as err:
            if err.status == 404 and " not found in namespace " in str(err):
                raise ApiError(
                    f"workflow {workflow!r} does not exist in namespace {self.namespace!r}; "
                    f"kubectl get workflows -n {self.namespace} lists them",
                    404,
                ) from err
            if err.status != 403:  # one may create runs without reading Workflows
                raise
            return None

    def get_run(self, name: str) -> WorkflowRun:
        return WorkflowRun.model_validate(self._get(wire.WORKFLOW_RUNS, name))

    def list_runs(
        self,
        workflow: str | None = None,
        *,
        all_namespaces: bool = False,
        selector: str | None = None,
    ) -> list[WorkflowRun]:
        """Runs of the namespace (or of all namespaces), of ``workflow`` if given, whose
        labels match ``selector`` (a label selector, e.g. ``team=data,tier!=free``)."""
        if all_namespaces:
            with self._api_errors("list", wire.WORKFLOW_RUNS):
                answer = self._custom.list_cluster_custom_object(
                    wire.GROUP, wire.VERSION, wire.WORKFLOW_RUNS, label_selector=selector or ""
                )
            items = _json_object(answer)["items"]
        else:
            items = self._list(wire.WORKFLOW_RUNS, selector)["items"]
        runs = [WorkflowRun.model_validate(i) for i in items]
        return [r for r in runs if workflow is None or r.spec.workflow_ref.name == workflow]

    def list_children(self, name: str) -> list[WorkflowRun]:
        """The child runs that run ``name``'s steps spawned (``ctx.spawn``), in request order."""
        selector = f"{wire.LABEL_PARENT_RUN}={wire.label_value(name)}"
        items = self._list(wire.WORKFLOW_RUNS, selector)["items"]
        runs = [WorkflowRun.model_validate(item) for item in items]
        index = wire.LABEL_CHILD_INDEX
        return sorted(runs, key=lambda r: int((r.metadata.get("labels") or {}).get(index) or 0))

    retry = _reruns.retry
    replay = _reruns.replay
    suspend = _pausing.suspend
    resume = _pausing.resume
    approve = _approvals.approve

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
            try:
                with self._api_errors("watch", wire.WORKFLOW_RUNS):
                    for event in stream:
                        if event["type"] == "DELETED":
                            raise KubehatchError(f"run {name!r} was deleted")
                        run = WorkflowRun.model_validate(event["object"])
                        yield run
                        if run.status and run.status.phase and run.status.phase.finished:
                            return
            except ApiError as err:
                if err.status != 410:  # 410 Gone: the watch expired; read the run afresh
                    raise
                yield (run := self.get_run(name))

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
        """Logs of the run's step pods (every attempt), by Job name ("" if not started)."""
        return {pod.job: pod.log for pod in self.pod_logs(name, step)}

    def pod_logs(self, name: str, step: str | None = None) -> list[PodLog]:
        """Every attempt of the run, oldest first: a Job's pod with its phase and its log or
        why it has none; a WorkerPool's task with its lines of its worker's log."""
        return step_logs(self, name, step)

    # --- plumbing -------------------------------------------------------------------------
    def _where(self, plural: str) -> tuple[str, str, str, str]:
        return wire.GROUP, wire.VERSION, self.namespace, plural

    def _create(self, plural: str, body: dict[str, Any]) -> str:
        """Create the object; returns its name (given, or made by the API server)."""
        with self._api_errors("create", plural, body.get("metadata", {}).get("name")):
            answer = self._custom.create_namespaced_custom_object(*self._where(plural), body)
        return str(_json_object(answer)["metadata"]["name"])

    def _get(self, plural: str, name: str) -> dict[str, Any]:
        with self._api_errors("get", plural, name):
            answer = self._custom.get_namespaced_custom_object(*self._where(plural), name)
        return _json_object(answer)

    def _list(self, plural: str, selector: str | None = None) -> dict[str, Any]:
        with self._api_errors("list", plural):
            answer = self._custom.list_namespaced_custom_object(
                *self._where(plural), label_selector=selector or ""
            )
        return _json_object(answer)

    def _patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._api_errors("patch", plural, name):
            answer = self._custom.patch_namespaced_custom_object(*self._where(plural), name, body)
        return _json_object(answer)

    @contextlib.contextmanager
    def _api_errors(self, verb: str, plural: str, name: str | None = None) -> Iterator[None]:
        """API and connection errors as one-line ApiErrors (see :func:`explain`)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            yield
        except (ApiException, HTTPError) as err:
            raise explain(err, verb, plural, name, self.namespace, self._host) from err


def _json_object(answer: object) -> dict[str, Any]:
    """The API server's answer to a custom object call: a JSON object."""
    if not isinstance(answer, dict):
        raise KubehatchError(f"unexpected answer from the API server: {answer!r:.200}")
    return answer
