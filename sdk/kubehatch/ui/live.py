"""Live updates as server-sent events, fed by Kubernetes watches (no polling).

Each stream is a :class:`Stream`: a producer thread reads a watch (or a followed log) with
the request's credentials and queues events; the request's thread writes them, with a
keep-alive comment when nothing happened for a while. When the browser goes away, the
write fails, the stream stops, and the producer's open response is closed, ending it.

- :func:`follow_run`: the run, then only what changed (its steps that changed, the rest of
  its status): a 1,000-step run is not sent again for each step that finishes;
- :func:`follow_runs`: row updates for the runs list, from the list's resourceVersion;
- :func:`follow_logs`: one attempt's pod log, streamed as it is written.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubehatch import _apierrors
from kubehatch.api import wire
from kubehatch.ui import views
from kubehatch.ui.backend import Backend, UiError

HEARTBEAT = 15.0
WATCH_SECONDS = 50
"""A watch's server-side timeout: then it is opened again from where it was."""
POD_WAIT_SECONDS = 600
LOG_CHUNK = 8192
_END = ("", None)


class Stopped(Exception):
    """The browser went away: the producer stops."""


class Expired(Exception):
    """410 Gone: the watch's resourceVersion is too old; read afresh."""


class Stream:
    """One text/event-stream response."""

    def __init__(self, heartbeat: float = HEARTBEAT) -> None:
        self.heartbeat = heartbeat
        self.stopped = threading.Event()
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=10_000)
        self._closers: list[Callable[[], object]] = []

    def send(self, event: str, data: Any) -> None:
        if self.stopped.is_set():
            raise Stopped
        self._queue.put((event, data))

    def closing(self, closer: Callable[[], object]) -> None:
        """Call ``closer`` when the stream stops (closes an open response)."""
        self._closers.append(closer)
        if self.stopped.is_set():
            closer()

    def stop(self) -> None:
        self.stopped.set()
        for closer in self._closers:
            with contextlib.suppress(Exception):
                closer()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_END)  # the pump stops waiting for the next event

    def start(self, producer: Callable[[Stream], None]) -> None:
        def run() -> None:
            try:
                producer(self)
            except (Stopped, Expired):
                pass
            except UiError as err:
                with contextlib.suppress(Stopped):
                    self.send("failure", err.as_json())
            except Exception as err:
                if not self.stopped.is_set():
                    with contextlib.suppress(Stopped):
                        self.send("failure", {"error": f"{type(err).__name__}: {err}"})
            finally:
                self._queue.put(_END)

        threading.Thread(target=run, daemon=True, name="kubehatch-ui-stream").start()

    def pump(self, write: Callable[[bytes], None]) -> None:
        """Write events until the producer ends or the browser goes away."""
        try:
            write(b"retry: 3000\n\n")
            while True:
                try:
                    event, data = self._queue.get(timeout=self.heartbeat)
                except queue.Empty:
                    write(b": keep-alive\n\n")
                    continue
                if (event, data) == _END:
                    write(b"event: end\ndata: {}\n\n")
                    return
                write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        except OSError:  # BrokenPipe, ConnectionReset: the page was closed
            pass
        finally:
            self.stop()


def watch(
    backend: Backend,
    plural: str,
    namespace: str | None,
    version: str | None,
    stream: Stream,
    *,
    labels: str = "",
    fields: str = "",
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, object) of one watch, until its timeout; BOOKMARKs included."""
    if stream.stopped.is_set():
        raise Stopped
    from kubernetes.watch.watch import iter_resp_lines
    from urllib3.exceptions import HTTPError

    options: dict[str, Any] = {
        "watch": True,
        "allow_watch_bookmarks": True,
        "timeout_seconds": WATCH_SECONDS,
        "label_selector": labels,
        "field_selector": fields,
        "_preload_content": False,
    }
    if version:
        options["resource_version"] = version
    where = (wire.GROUP, wire.VERSION)
    resp: Any
    with backend.calling("watch", plural, namespace):
        if namespace:
            resp = backend.custom.list_namespaced_custom_object(
                *where, namespace, plural, **options
            )
        else:
            resp = backend.custom.list_cluster_custom_object(*where, plural, **options)
    stream.closing(resp.close)
    try:
        for line in iter_resp_lines(resp):
            if stream.stopped.is_set():
                raise Stopped
            event = json.loads(line)
            obj = wire.mapping(event.get("object"))
            if event.get("type") == "ERROR":
                if obj.get("code") == 410:
                    raise Expired
                raise UiError(int(obj.get("code") or 502), str(obj.get("message")))
            yield str(event.get("type")), obj
    except (HTTPError, OSError, ValueError):
        if stream.stopped.is_set():
            raise Stopped from None
        raise
    finally:
        with contextlib.suppress(Exception):
            resp.release_conn()


def _version(obj: dict[str, Any]) -> str | None:
    return wire.mapping(obj.get("metadata")).get("resourceVersion")


def _changes(run: dict[str, Any], steps: dict[str, Any]) -> dict[str, Any]:
    """What a live run page needs after a change: all but the input, the Workflow
    snapshot and the steps that did not change."""
    spec = {k: v for k, v in wire.mapping(run.get("spec")).items() if k != "input"}
    status = wire.mapping(run.get("status"))
    rest = {k: v for k, v in status.items() if k not in ("steps", "workflowSpec")}
    return {
        "metadata": wire.mapping(run.get("metadata")),
        "spec": spec,
        "status": rest,
        "steps": views.step_delta(steps, wire.mapping(status.get("steps"))),
    }


def follow_run(backend: Backend, namespace: str, name: str, stream: Stream) -> None:
    """The run (with its DAG's spec) once, then its changes, until the page closes."""
    while True:
        found = backend.run(namespace, name)
        stream.send("run", found)
        run = found["run"]
        version = _version(run)
        status = wire.mapping(run.get("status"))
        steps, snapshot = wire.mapping(status.get("steps")), status.get("workflowSpec")
        try:
            while True:
                for kind, obj in watch(
                    backend, wire.WORKFLOW_RUNS, namespace, version, stream,
                    fields=f"metadata.name={name}",
                ):  # fmt: skip
                    version = _version(obj) or version
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        stream.send("deleted", {"name": name})
                        return
                    status = wire.mapping(obj.get("status"))
                    if status.get("workflowSpec") != snapshot:  # started, or retried
                        raise Expired
                    stream.send("patch", _changes(views.lean(obj), steps))
                    steps = wire.mapping(status.get("steps"))
        except Expired:
            continue


def current_version(backend: Backend, namespace: str | None, labels: str, fields: str) -> str:
    """The list's resourceVersion now, from a one-item page (a watch without one would
    first replay every run as ADDED)."""
    answer = backend.list_page(
        wire.WORKFLOW_RUNS, namespace, limit=1, labels=labels, fields=fields, metadata_only=True
    )
    return str(wire.mapping(answer.get("metadata")).get("resourceVersion") or "")


def follow_runs(
    backend: Backend,
    namespace: str | None,
    stream: Stream,
    *,
    labels: str = "",
    fields: str = "",
    version: str | None = None,
) -> None:
    """Changes of the runs a list shows (its selectors), as row summaries."""
    version = version or current_version(backend, namespace, labels, fields)
    try:
        while True:
            for kind, obj in watch(
                backend, wire.WORKFLOW_RUNS, namespace, version, stream, labels=labels,
                fields=fields,
            ):  # fmt: skip
                version = _version(obj) or version
                if kind != "BOOKMARK":
                    stream.send("run", {"type": kind, "run": views.run_summary(obj)})
    except Expired:
        stream.send("expired", {})  # the page reloads its list


def _attempt(pod: Any) -> dict[str, Any]:
    meta = pod.metadata
    labels = meta.labels or {}
    return {
        "pod": meta.name,
        "job": labels.get("job-name", meta.name),
        "attempt": labels.get(wire.LABEL_ATTEMPT),
        "phase": (pod.status.phase if pod.status else None) or "Unknown",
        "waiting": _apierrors.not_started(pod),
        "created": wire.format_time(meta.creation_timestamp) if meta.creation_timestamp else None,
    }


def follow_logs(
    backend: Backend, namespace: str, run: str, step: str, pod: str | None, stream: Stream
) -> None:
    """The step's attempts, then the log of ``pod`` (default: the latest), followed."""
    selector = (
        f"{wire.LABEL_RUN}={wire.label_value(run)},{wire.LABEL_STEP}={wire.label_value(step)}"
    )
    with backend.calling("list", "pods", namespace):
        found = backend.core.list_namespaced_pod(namespace, label_selector=selector)
    attempts = sorted((_attempt(p) for p in found.items), key=lambda a: str(a["created"]))
    stream.send("attempts", attempts)
    if not attempts:
        stream.send("nolog", {"message": _without_pods(backend, namespace, run, step, selector)})
        return
    chosen = pod or str(attempts[-1]["pod"])
    _wait_started(backend, namespace, chosen, stream)
    resp: Any
    with backend.calling("get", "pods/log", namespace, chosen):
        resp = backend.core.read_namespaced_pod_log(
            chosen, namespace, container="step", follow=True, _preload_content=False
        )
    stream.closing(resp.close)
    try:
        for chunk in resp.stream(LOG_CHUNK, decode_content=True):
            stream.send("log", chunk.decode(errors="replace"))
    except Exception:
        if stream.stopped.is_set():
            raise Stopped from None
        raise
    with backend.calling("get", "pods", namespace, chosen):
        final = backend.core.read_namespaced_pod(chosen, namespace)
    stream.send("logend", _attempt(final))


def _without_pods(backend: Backend, namespace: str, run: str, step: str, selector: str) -> str:
    """Why a step has no pod: it ran on a WorkerPool (its lines are in its worker's log),
    or it has not started, or its pods were cleaned up."""
    tasks: list[dict[str, Any]] = []
    with contextlib.suppress(Exception):  # pools not served, or not readable: pods say it
        listed = backend.custom.list_namespaced_custom_object(
            wire.GROUP, wire.VERSION, namespace, wire.WORKER_TASKS, label_selector=selector
        )
        tasks = list(wire.mapping(listed).get("items") or [])
    if not tasks:
        return f"step {step!r} has no pods (not started, or cleaned up)"
    latest = max(tasks, key=lambda t: str(t["metadata"].get("creationTimestamp")))
    pool = wire.mapping(latest.get("spec")).get("pool", "?")
    worker = wire.mapping(latest.get("status")).get("worker")
    where = f"worker {worker}" if worker else "not claimed by a worker yet"
    return (
        f"step {step!r} runs on WorkerPool {pool!r} ({where}), not in a pod of its own: "
        f"`kubehatch logs {run} {step} -n {namespace}` shows its lines of the worker's log"
    )


def _wait_started(backend: Backend, namespace: str, pod: str, stream: Stream) -> None:
    """Until the pod's container has started (its log exists), saying why it has not."""
    said: str | None = None
    resp: Any
    for _ in range(POD_WAIT_SECONDS // WATCH_SECONDS):
        with backend.calling("get", "pods", namespace, pod):
            current = backend.core.read_namespaced_pod(pod, namespace)
        waiting = _apierrors.not_started(current)
        if waiting is None:
            return
        if waiting != said:
            stream.send("waiting", {"pod": pod, "reason": waiting})
            said = waiting
        with backend.calling("watch", "pods", namespace, pod):
            resp = backend.core.list_namespaced_pod(
                namespace, field_selector=f"metadata.name={pod}", watch=True,
                resource_version=current.metadata.resource_version if current.metadata else None,
                timeout_seconds=WATCH_SECONDS, _preload_content=False,
            )  # fmt: skip
        stream.closing(resp.close)
        from kubernetes.watch.watch import iter_resp_lines

        for _line in iter_resp_lines(resp):  # the first change: look again
            break
        with contextlib.suppress(Exception):
            resp.close()
        if stream.stopped.is_set():
            raise Stopped
