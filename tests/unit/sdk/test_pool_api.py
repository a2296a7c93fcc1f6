"""The pool worker's API calls: the requests the kubernetes client sends for them (to a
scripted server on 127.0.0.1, loopback only), errors by kind, retries, and the watch that
resumes where it was and lists again when its version expired.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from kubehatch._pool.api import (
    Conflict,
    Expired,
    NotFound,
    Refused,
    TaskApi,
    Unavailable,
    follow,
    retrying,
    translate,
    write_while_ours,
)
from kubehatch._pool.events import Event, Fatal, Listed, Watched
from tests.unit.sdk.test_incluster import closed_port

BASE = "/apis/kubehatch.dev/v1alpha1/namespaces/ns/workertasks"


class Server:
    """Answers with the next scripted (status, body) for the request's method and path
    (without the query); records every request."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.port = 0

    def reply(self, method: str, path: str, status: int, body: Any) -> None:
        self.replies.setdefault((method, path), []).append((status, body))

    def handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        self.requests.append(
            {
                "method": handler.command,
                "path": url.path,
                "query": dict(urllib.parse.parse_qsl(url.query)),
                "type": handler.headers.get("Content-Type"),
                "body": json.loads(handler.rfile.read(length) or "null"),
            }
        )
        queued = self.replies.get((handler.command, url.path)) or [(404, {"message": "nope"})]
        status, body = queued.pop(0)
        data = (
            b"".join(json.dumps(e).encode() + b"\n" for e in body)
            if isinstance(body, list)  # a watch: one event a line
            else json.dumps(body).encode()
        )
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def server() -> Iterator[Server]:
    fake = Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.handle(self)

        def do_PATCH(self) -> None:
            fake.handle(self)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def api(server: Server) -> TaskApi:
    configuration = client.Configuration(host=f"http://127.0.0.1:{server.port}")
    return TaskApi(client.ApiClient(configuration), "ns", "fast")


def task(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}, "spec": {"pool": "fast"}}


def test_listing_selects_the_pools_tasks(api: TaskApi, server: Server) -> None:
    server.reply(
        "GET", BASE, 200, {"metadata": {"resourceVersion": "7"}, "items": [task("a", "5")]}
    )
    assert api.list() == ([task("a", "5")], "7")
    [request] = server.requests
    assert request["query"] == {"fieldSelector": "spec.pool=fast"}


def test_a_status_write_is_a_merge_patch_of_the_status_subresource(
    api: TaskApi, server: Server
) -> None:
    body = {"metadata": {"resourceVersion": "5"}, "status": {"phase": "Running"}}
    server.reply("PATCH", f"{BASE}/a/status", 200, task("a", "6"))
    assert api.patch_status("a", body) == task("a", "6")
    [request] = server.requests
    assert request["type"] == "application/merge-patch+json"
    assert request["body"] == body


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (409, Conflict),
        (404, NotFound),
        (403, Refused),
        (422, Refused),
        (429, Unavailable),
        (503, Unavailable),
    ],
)
def test_answers_become_errors_by_kind(
    api: TaskApi, server: Server, status: int, kind: type[Exception]
) -> None:
    message = "the object has been modified; please apply your changes to the latest version"
    server.reply("PATCH", f"{BASE}/a/status", status, {"kind": "Status", "message": message})
    with pytest.raises(kind, match=f"^{status} {message}"):
        api.patch_status("a", {"status": {}})


def test_no_answer_is_unavailable() -> None:
    configuration = client.Configuration(host=f"http://127.0.0.1:{closed_port()}")
    configuration.retries = 0
    api = TaskApi(client.ApiClient(configuration), "ns", "fast")
    with pytest.raises(Unavailable, match="no answer from the API server"):
        api.get("a")


def test_the_watch_resumes_from_a_version_and_expires_with_410(
    api: TaskApi, server: Server
) -> None:
    events = [
        {"type": "ADDED", "object": task("a", "8")},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
    ]
    server.reply("GET", BASE, 200, events)
    assert list(api.watch("7")) == [("ADDED", task("a", "8")), ("BOOKMARK", events[1]["object"])]
    query = server.requests[0]["query"]
    assert query["watch"] == "true" and query["resourceVersion"] == "7"
    assert query["fieldSelector"] == "spec.pool=fast" and query["allowWatchBookmarks"] == "true"
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    server.reply("GET", BASE, 200, [{"type": "ERROR", "object": gone}])
    with pytest.raises(Expired):
        list(api.watch("1"))


def test_retrying_tries_again_only_for_passing_failures() -> None:
    sleeps: list[float] = []
    answers: list[Any] = [Unavailable("503"), Unavailable("429"), "done"]

    def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    assert retrying(call, (0.1, 0.2, 0.3), sleeps.append) == "done"
    assert sleeps == [0.1, 0.2]
    answers[:] = [Conflict("409")]
    with pytest.raises(Conflict):
        retrying(call, (0.1,), sleeps.append)
    answers[:] = [Unavailable("1"), Unavailable("2")]
    with pytest.raises(Unavailable, match="2"):
        retrying(call, (0.1,), sleeps.append)


def test_translate_keeps_our_errors_and_reads_statuses() -> None:
    mine = Conflict("409 x", 409)
    assert translate(mine) is mine
    assert isinstance(translate(OSError("reset")), Unavailable)
    assert isinstance(translate(client.ApiException(status=0)), Unavailable)
    assert isinstance(translate(client.ApiException(status=500)), Unavailable)


class ScriptedTasks:
    """A Tasks whose list and watch answers are scripted, one per call."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []
        self.writes: list[dict[str, Any]] = []
        self.current = task("a", "1")

    def list(self) -> tuple[list[dict[str, Any]], str]:
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    def watch(self, version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        self.watched_from.append(version)
        answer = self.watches.pop(0) if self.watches else Exception("no more")
        if isinstance(answer, Exception):
            raise answer
        yield from answer

    def get(self, name: str) -> dict[str, Any]:
        return self.current

    def patch_status(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(body)
        if body["metadata"]["resourceVersion"] != self.current["metadata"]["resourceVersion"]:
            raise Conflict("409")
        return self.current


def run_follow(tasks: ScriptedTasks, stop_after: int) -> tuple[list[Event], list[str]]:
    stopped = threading.Event()
    posted: list[Event] = []
    said: list[str] = []

    def post(event: Event) -> None:
        posted.append(event)
        if len(posted) >= stop_after:
            stopped.set()

    def say(line: str) -> None:
        said.append(line)
        if len(said) > 5:
            stopped.set()

    follow(tasks, post, stopped, say, "namespace 'ns'")  # type: ignore[arg-type]
    return posted, said


def test_the_watch_resumes_where_it_was_and_lists_again_after_a_410() -> None:
    a8, a9, b10 = task("a", "8"), task("a", "9"), task("b", "10")
    tasks = ScriptedTasks(
        lists=[([task("a", "5")], "7"), ([a9, b10], "12")],
        watches=[
            [("ADDED", a8), ("BOOKMARK", {"metadata": {"resourceVersion": "9"}})],
            Expired("410 too old"),
            [("DELETED", b10)],
        ],
    )
    posted, _ = run_follow(tasks, stop_after=4)
    assert posted == [
        Listed([task("a", "5")]),
        Watched("ADDED", a8),
        Listed([a9, b10]),
        Watched("DELETED", b10),
    ]
    assert tasks.watched_from == ["7", "9", "12"]


def test_a_first_listing_refused_is_fatal_and_says_how_to_fix_it() -> None:
    posted, _ = run_follow(ScriptedTasks([NotFound("404")], []), stop_after=1)
    [fatal] = posted
    assert isinstance(fatal, Fatal) and "install or upgrade the kubehatch chart" in fatal.message
    posted, _ = run_follow(ScriptedTasks([Refused("403 forbidden")], []), stop_after=1)
    [fatal] = posted
    assert isinstance(fatal, Fatal) and "worker ServiceAccount" in fatal.message


def test_watch_failures_after_the_first_listing_are_said_and_retried() -> None:
    tasks = ScriptedTasks(
        lists=[([], "7")], watches=[Unavailable("503"), [("ADDED", task("a", "8"))]]
    )
    posted, said = run_follow(tasks, stop_after=2)
    assert posted == [Listed([]), Watched("ADDED", task("a", "8"))]
    assert said == ["watching tasks failed: 503; trying again"]


def test_a_write_is_repeated_on_the_new_version_while_the_task_is_ours() -> None:
    tasks = ScriptedTasks([], [])
    tasks.current = {**task("a", "3"), "status": {"phase": "Running", "worker": "me"}}

    def body(version: str) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": version}, "status": {}}

    def owns(found: dict[str, Any]) -> bool:
        return found["status"]["worker"] == "me"

    assert write_while_ours(tasks, "a", "2", body, owns) == tasks.current  # type: ignore[arg-type]
    assert [w["metadata"]["resourceVersion"] for w in tasks.writes] == ["2", "3"]
    tasks.current["status"]["worker"] = "you"
    assert write_while_ours(tasks, "a", "2", body, owns) is None  # type: ignore[arg-type]
