"""One reconcile per fixture, against an in-memory API: the writes, in order, and the status.

Each file in fixtures/ is a small story (its comment says which): a Workflow, the run,
other runs of the workflow, the run's Jobs, what their pods said; then what one pass
must write. The pass is the operator's own (`Reconciler.reconcile`), only the API is
in memory, so a change of behaviour shows up as a changed list of writes.
"""

from __future__ import annotations

import asyncio
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubehatch.api import wire
from kubehatch_operator.reconciler import Reconciler
from kubehatch_operator.settings import ObservabilitySettings, Settings
from kubehatch_operator.store import Store
from tests.unit.operator.fakekube import FakeKube

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.yaml"))
RUN, RUN_UID = "r1", "r1-uid"
"""Every fixture's run: its derived names are written $job(step,attempt),
$output(step,attempt) and $input."""


def _names(text: str) -> str:
    """The fixture with the names the operator derives from the run's uid filled in."""

    def job(match: re.Match[str]) -> str:
        return wire.job_name(RUN, RUN_UID, match[1], int(match[2]))

    text = re.sub(r"\$output\(([\w.-]+),(\d+)\)", lambda m: f"{job(m)}-output", text)
    text = re.sub(r"\$job\(([\w.-]+),(\d+)\)", job, text)
    return text.replace("$input", wire.input_configmap_name(RUN, RUN_UID))


def _object(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": wire.API_VERSION, "kind": kind, **copy.deepcopy(body)}


def _contains(actual: Any, expected: Any, path: str = "status") -> None:
    """Every key of ``expected`` is in ``actual`` with that value (lists: item by item)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not a mapping"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is missing from {sorted(actual)}"
            _contains(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list) and expected and isinstance(expected[0], dict):
        assert isinstance(actual, list) and len(actual) >= len(expected), f"{path}: {actual!r}"
        for index, item in enumerate(expected):
            _contains(actual[index], item, f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def _job_env(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def _parents(job: dict[str, Any]) -> dict[str, str]:
    volumes = job["spec"]["template"]["spec"]["volumes"]
    sources = next((v["projected"]["sources"] for v in volumes if v["name"] == "parents"), [])
    heads = [s for s in sources if s["configMap"]["items"][0]["key"] == wire.OUTPUT_KEY]
    return {s["configMap"]["items"][0]["path"][:-5]: s["configMap"]["name"] for s in heads}


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_one_reconcile(fixture: Path) -> None:
    case = yaml.safe_load(_names(fixture.read_text()))
    kube, store = FakeKube(), Store()
    store.observe_workflow(_object("Workflow", case["workflow"]))
    for other in case.get("others", []):
        store.observe_run(kube.add_run(_object("WorkflowRun", other)))
    run = kube.add_run(_object("WorkflowRun", case["run"]))
    key = store.observe_run(run)
    for job in case.get("jobs", []):
        kube.jobs[job["metadata"]["name"]] = copy.deepcopy(job)
        store.observe_job(copy.deepcopy(job))
    for name in case.get("seen_outputs", []):  # the outputs watch saw them appear
        owner = {"apiVersion": wire.API_VERSION, "kind": "WorkflowRun", "name": RUN, "uid": RUN_UID}
        store.observe_output({"name": name, "ownerReferences": [owner]})
    kube.outputs.update(case.get("outputs", {}))
    kube.terminations.update({k: tuple(v) for k, v in case.get("terminations", {}).items()})
    kube.waiting.update(case.get("waiting", {}))
    kube.refuse.update({k: tuple(v) for k, v in case.get("refuse", {}).items()})
    if case.get("deleted"):
        del kube.runs[key[1]]
    quiet = Settings(observability=ObservabilitySettings(post_events=False))
    reconciler = Reconciler(store, kube, quiet)  # type: ignore[arg-type]
    kicked: list[tuple[str, str]] = []
    reconciler.queue.kick = kicked.append  # type: ignore[method-assign]

    async def passes() -> None:
        for _ in range(case.get("passes", 1)):
            await reconciler.reconcile(key)

    asyncio.run(passes())

    expect = case["expect"]
    assert kube.writes == [tuple(w) for w in expect["writes"]]
    assert [name for _, name in kicked if name != RUN] == expect.get("kicks", [])
    if expect.get("forgotten"):
        assert key not in store.runs
        return
    _contains(kube.runs[key[1]].get("status") or {}, expect.get("status", {}))
    for name, job in expect.get("jobs", {}).items():
        made = kube.jobs[name]
        env = _job_env(made)
        assert made["metadata"]["ownerReferences"][0]["uid"] == case["run"]["metadata"]["uid"]
        if "parents" in job:
            assert _parents(made) == job["parents"]
        if "step" in job:
            assert env["KUBEHATCH_STEP"] == job["step"]
        if "action" in job:
            assert env["KUBEHATCH_ACTION"] == job["action"]
