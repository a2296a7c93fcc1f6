"""The dashboard's log pane for a step with no pod of its own: one on a WorkerPool."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kubehatch.ui.live import _without_pods


def backend(items: list[dict[str, Any]] | Exception) -> Any:
    def listing(*_: Any, **__: Any) -> dict[str, Any]:
        if isinstance(items, Exception):
            raise items
        return {"items": items}

    return SimpleNamespace(custom=SimpleNamespace(list_namespaced_custom_object=listing))


def task(name: str, created: str, worker: str | None) -> dict[str, Any]:
    status = {"worker": worker} if worker else {}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"pool": "fast"},
        "status": status,
    }


def test_a_step_on_a_pool_says_where_its_lines_are() -> None:
    tasks = [
        task("r-s-1", "2026-01-01T00:00:01Z", "fast-1-a"),
        task("r-s-2", "2026-01-01T00:00:02Z", "fast-1-b"),
    ]
    said = _without_pods(backend(tasks), "team", "r", "s", "sel")
    assert "runs on WorkerPool 'fast' (worker fast-1-b)" in said  # the latest attempt
    assert "`kubehatch logs r s -n team`" in said


def test_an_unclaimed_task_and_no_task_at_all() -> None:
    unclaimed = _without_pods(backend([task("r-s-1", "t", None)]), "team", "r", "s", "sel")
    assert "not claimed by a worker yet" in unclaimed
    for nothing in (backend([]), backend(RuntimeError("403"))):
        said = _without_pods(nothing, "team", "r", "s", "sel")
        assert said == "step 's' has no pods (not started, or cleaned up)"
