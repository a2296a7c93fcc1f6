"""Listing a page at a time: start-up and relisting never hold every object at once."""

from __future__ import annotations

import asyncio
from typing import Any

from kubehatch_operator.listing import LIST_PAGE, Lister
from kubehatch_operator.relisting import Relisting, relist
from kubehatch_operator.store import Store
from tests.unit.operator.test_slots import body, queued, running


class PagedCustom:
    """The custom-objects API, serving a list in pages with continue tokens."""

    def __init__(self, items: list[dict[str, Any]], page: int) -> None:
        self.items, self.page, self.calls = items, page, []

    def list_cluster_custom_object(self, *_: Any, **options: Any) -> dict[str, Any]:
        self.calls.append(options)
        start = int(options.get("_continue") or 0)
        assert options["limit"] == LIST_PAGE
        rest = start + self.page
        meta = {"resourceVersion": "77", "continue": str(rest) if rest < len(self.items) else ""}
        return {"items": self.items[start:rest], "metadata": meta}

    list_namespaced_custom_object = list_cluster_custom_object


def run(name: str, namespace: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}}


def test_each_page_is_handed_over_as_it_comes_and_globs_filter_namespaces() -> None:
    items = [run(f"r{i}", "team-a" if i % 2 else "other") for i in range(7)]
    custom = PagedCustom(items, page=3)
    pages: list[list[str]] = []
    lister = Lister(custom, None)  # type: ignore[arg-type]
    consume = lambda page: pages.append([i["metadata"]["name"] for i in page])  # noqa: E731
    version = asyncio.run(lister.each_page("workflowruns", ("team-*",), consume))
    assert version == 77 and len(custom.calls) == 3
    assert pages == [["r1"], ["r3", "r5"], []]


def test_a_relisting_fed_in_pages_agrees_with_the_whole_listing() -> None:
    bodies = [body("first", "ada", running("ada"), 0)]
    bodies += [body(f"q{i}", "ada", queued("ada"), i + 1) for i in range(5)]
    whole, paged = Store(), Store()
    whole.observe_run(body("deleted", "ada", queued("ada"), 9))
    paged.observe_run(body("deleted", "ada", queued("ada"), 9))
    expected = relist(whole, bodies, [], version=500)
    relisting = Relisting(paged)
    for i in range(0, len(bodies), 2):
        relisting.runs(bodies[i : i + 2])
    got = relisting.finish(500)
    assert [e.key for e in got[0]] == [e.key for e in expected[0]] == [("ns", "deleted")]
    assert got[1] == expected[1] and set(paged.runs) == set(whole.runs)


def test_a_run_recreated_under_its_name_replaces_the_old_one() -> None:
    store = Store()
    store.observe_run(body("r", "ada", queued("ada"), 1))
    again = body("r", "ada", {}, 2)
    again["metadata"]["uid"] = "new-uid"
    relisting = Relisting(store)
    relisting.runs([again])
    gone, changed = relisting.finish(500)
    assert [e.uid for e in gone] == ["r-uid"] and store.runs[("ns", "r")].uid == "new-uid"
    assert changed == {("ns", "r")}


def test_finished_runs_deleted_by_others_leave_the_store_at_the_next_relisting() -> None:
    store = Store()
    for name, version in (("old", 10), ("late", 900)):
        done = body(name, "ada", {**running("ada"), "phase": "Succeeded"}, 0)
        done["metadata"]["resourceVersion"] = str(version)
        store.observe_run(done)
    Relisting(store).finish(500)  # neither is listed; "late" finished after the listing
    assert list(store.finished) == [("ns", "late")]
    assert [r.name for r in store.finished_runs_of(("ns", "wf"))] == ["late"]


def test_a_finished_run_leaving_the_watchs_selection_is_not_taken_for_deleted() -> None:
    """With runs selected by phase, the API server tells a run finished by a DELETED event
    carrying its last unfinished state; retention must still see the run."""
    from kubehatch_operator.reconciler import Reconciler
    from kubehatch_operator.runtime import Runtime
    from kubehatch_operator.settings import ObservabilitySettings, Settings
    from kubehatch_operator.triggers.controller import Triggers
    from tests.unit.operator.fakekube import FakeKube

    async def scenario() -> None:
        store, kube = Store(), FakeKube()
        quiet = Settings(observability=ObservabilitySettings(post_events=False))
        reconciler = Reconciler(store, kube, quiet)  # type: ignore[arg-type]
        runtime = Runtime(store, reconciler, Triggers(store, kube, quiet))  # type: ignore[arg-type]
        swept: list[object] = []
        reconciler.sweep_soon = lambda workflow, delay=0.5: swept.append(workflow)  # type: ignore[method-assign]
        last_unfinished = body("r", "ada", running("ada"), 0)
        runtime.run_changed(last_unfinished, deleted=False)
        done = body("r", "ada", {**running("ada"), "phase": "Succeeded"}, 0)
        done["metadata"]["resourceVersion"] = "300"
        store.observe_run(done)  # the operator's own write, answered
        last_unfinished["metadata"]["resourceVersion"] = "300"
        runtime.run_changed(last_unfinished, deleted=True)  # the watch: it left the selection
        assert ("ns", "r") in store.finished and swept == [("ns", "wf")]
        other = body("gone", "ada", running("ada"), 1)
        runtime.run_changed(other, deleted=False)
        runtime.run_changed(other, deleted=True)  # an unfinished run deleted: gone
        assert ("ns", "gone") not in store.runs and ("ns", "gone") not in store.finished

    asyncio.run(scenario())
