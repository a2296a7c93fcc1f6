"""``kubehatch worker`` as a whole: its options, and a real worker process against a fake
API server on 127.0.0.1 (loopback only) that keeps WorkerTasks as the API server does:
status patches with a resourceVersion precondition, a watch that streams changes.
"""

from __future__ import annotations

import argparse
import copy
import http.server
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubehatch import cli
from kubehatch._pool.worker import READY_FILE, Options
from kubehatch.api.stepenv import StepEnv
from kubehatch.cli import worker as worker_cli
from kubehatch.errors import KubehatchError

BASE = "/apis/kubehatch.dev/v1alpha1/namespaces/ns/workertasks"

WORKER = """
import time
from kubehatch import Context, Fn, Worker, WorkflowJob

def greet(ctx: Context) -> dict:
    print("hello", flush=True)
    return {"hi": ctx.workflow_input()["name"], "parent": ctx.step_output("first")}

def waits(ctx: Context) -> dict:
    print("waiting for the cancellation", flush=True)
    print(f"saw the cancellation: {ctx.wait_for_cancel(30)}", flush=True)
    return {}

worker = Worker("pooled", image="i:1")
for f in (greet, waits):
    worker.register_workflow(WorkflowJob(name=f.__name__, steps=[Fn(f).set_name(f.__name__)]))
"""

# The worker, with its readiness file where the test can see it.
WORKER_PROCESS = """
import sys
from pathlib import Path
from kubehatch._pool import worker
worker.READY_FILE = Path(sys.argv[1])
from kubehatch.cli import main
sys.exit(main(["worker", *sys.argv[2:]]))
"""


def args(**given: Any) -> argparse.Namespace:
    options = {
        "pool": None,
        "namespace": None,
        "slots": None,
        "worker": None,
        "stop_grace": 10.0,
        "shutdown_grace": 25.0,
    }
    return argparse.Namespace(**{**options, **given})


def test_options_come_from_the_command_line_then_the_pods_environment() -> None:
    env = {
        "KUBEHATCH_POOL": "fast",
        "KUBEHATCH_WORKER": "app:worker",
        "KUBEHATCH_SLOTS": "8",
        "KUBEHATCH_POD_NAME": "fast-abc-x1",
        "KUBEHATCH_POD_NAMESPACE": "team",
    }
    assert worker_cli.options(args(), env) == Options(
        pool="fast", worker="app:worker", identity="fast-abc-x1", namespace="team", slots=8
    )
    given = worker_cli.options(args(pool="p", worker="m:w", slots=2, namespace="n"), env)
    assert (given.pool, given.worker, given.slots, given.namespace) == ("p", "m:w", 2, "n")
    local = worker_cli.options(args(pool="p", worker="m:w"), {})
    assert local.slots == 4 and local.namespace is None
    assert local.identity.endswith(f"-{os.getpid()}")


@pytest.mark.parametrize(
    ("given", "env", "error"),
    [
        ({}, {"KUBEHATCH_WORKER": "m:w"}, "which pool? give --pool NAME (or set KUBEHATCH_POOL)"),
        ({"pool": "p"}, {}, "give --worker module:attribute (or set KUBEHATCH_WORKER)"),
        ({"pool": "p", "worker": "m:w", "slots": 0}, {}, "--slots 0: give 1 to 256"),
        ({"pool": "p", "worker": "m:w"}, {"KUBEHATCH_SLOTS": "many"}, "KUBEHATCH_SLOTS='many'"),
        ({"pool": "p", "worker": "m:w", "stop_grace": -1.0}, {}, "--stop-grace -1: give"),
    ],
)
def test_a_missing_or_bad_option_is_named_with_its_fix(
    given: dict[str, Any], env: dict[str, str], error: str
) -> None:
    with pytest.raises(KubehatchError, match=re.escape(error)):
        worker_cli.options(args(**given), env)


def test_the_subcommand_is_found_and_documents_its_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as leaving:
        cli.main(["worker", "--help"])
    assert leaving.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: kubehatch worker")
    for name in ("KUBEHATCH_POOL", "KUBEHATCH_POD_NAME", "[<task>]", "--shutdown-grace"):
        assert name in out
    assert str(READY_FILE) == "/tmp/kubehatch-worker-ready"


class FakeApiServer:
    """WorkerTasks as the API server keeps them: every change is an event with a version,
    a watch replays what came after its version, then streams (chunked) until it ends."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[int, str, dict[str, Any]]] = []
        self.version = 10
        self.lock = threading.Condition()
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.port = 0

    def _changed(self, kind: str, task: dict[str, Any]) -> None:
        self.version += 1
        task["metadata"]["resourceVersion"] = str(self.version)
        self.log.append((self.version, kind, copy.deepcopy(task)))
        self.lock.notify_all()

    def add(self, name: str, action: str) -> None:
        step = StepEnv("ns", "wf", "r1", "u", action, f"{action}:{action}", 1, ("first",), "o")
        with self.lock:
            self.tasks[name] = {
                "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {
                    "pool": "fast",
                    "env": step.to_env(),
                    "input": '{"name": "ada"}',
                    "parents": {"first": '{"n": 1}'},
                    "leaseSeconds": 6,
                },
            }
            self._changed("ADDED", self.tasks[name])

    def delete(self, name: str) -> None:
        with self.lock:
            self._changed("DELETED", self.tasks.pop(name))

    def status(self, name: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.tasks[name].get("status") or {})

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> tuple[int, Any]:
        url = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if handler.command == "GET" and url.path == BASE and query.get("watch") == "true":
            self.watch(handler, int(query.get("resourceVersion") or 0))
            return 0, None
        with self.lock:
            if handler.command == "GET" and url.path == BASE:
                items = [copy.deepcopy(t) for t in self.tasks.values()]
                return 200, {"metadata": {"resourceVersion": str(self.version)}, "items": items}
            name = url.path.removeprefix(f"{BASE}/").removesuffix("/status")
            if name not in self.tasks:
                return 404, {"kind": "Status", "code": 404, "message": f"{name} not found"}
            task = self.tasks[name]
            if handler.command == "PATCH":
                length = int(handler.headers.get("Content-Length") or 0)
                body = json.loads(handler.rfile.read(length))
                self.patches.append((name, body))
                if body["metadata"]["resourceVersion"] != task["metadata"]["resourceVersion"]:
                    return 409, {"kind": "Status", "code": 409, "message": "modified"}
                task.setdefault("status", {}).update(body["status"])
                self._changed("MODIFIED", task)
            return 200, copy.deepcopy(task)

    def watch(self, handler: http.server.BaseHTTPRequestHandler, since: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with self.lock:
                news = [e for e in self.log if e[0] > since]
                if not news:
                    self.lock.wait(0.05)
                    continue
            for version, kind, task in news:
                data = json.dumps({"type": kind, "object": task}).encode() + b"\n"
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                since = version
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    fake = FakeApiServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def reply(self) -> None:
            status, body = fake.answer(self)
            if status:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        do_GET = do_PATCH = reply

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    fake.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


def test_a_worker_claims_runs_reports_stops_a_deleted_task_and_shuts_down(
    apiserver: FakeApiServer, tmp_path: Path
) -> None:
    (tmp_path / "pooled.py").write_text(WORKER)
    (tmp_path / "kubeconfig").write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"http://127.0.0.1:{apiserver.port}"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}
                ],
                "current-context": "x",
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEHATCH_", "KUBERNETES_"))}
    env.update(
        KUBECONFIG=str(tmp_path / "kubeconfig"),
        PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]),
        KUBEHATCH_POD_NAME="fast-abc-x1",
    )
    ready = tmp_path / "ready"
    apiserver.add("t1", "greet")
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER_PROCESS,
            str(ready),
            "--pool",
            "fast",
            "--worker",
            "pooled:worker",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr or []])
    reader.start()

    def said(text: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(text in line for line in seen)

    try:
        wait_for(lambda: apiserver.status("t1").get("phase") == "Succeeded", "t1's report")
        status = apiserver.status("t1")
        assert status["worker"] == "fast-abc-x1" and status["reason"] == "Succeeded"
        assert json.loads(status["output"]) == {"hi": "ada", "parent": {"n": 1}}
        assert status["claimedAt"] <= status["finishedAt"]
        assert ready.exists()
        wait_for(lambda: said("[t1] hello"), "t1's output, prefixed")

        apiserver.add("t2", "waits")
        wait_for(lambda: said("[t2] waiting for the cancellation"), "t2 to start")
        apiserver.delete("t2")  # how the operator cancels a step
        wait_for(lambda: said("[t2] saw the cancellation: True"), "t2 to see its cancellation")
        wait_for(lambda: said("not reported (deleted)"), "t2 to end")

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        reader.join(10)
        said("")
        assert seen[-1].strip() == "kubehatch worker: stopped", seen
        assert not ready.exists()
        assert [name for name, _ in apiserver.patches] == ["t1", "t1", "t2"]  # claim, report, claim
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
