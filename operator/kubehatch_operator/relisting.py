"""Agreeing with a fresh listing of runs and step Jobs (at start-up, and every minute):
what a watch that re-lists after an outage misses."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kubehatch.api import wire
from kubehatch_operator.entries import Key, RunEntry, older
from kubehatch_operator.store import Store
from kubehatch_operator.tasks import attempt_of


class Relisting:
    """Agreeing with a fresh listing of every run and step Job, fed a page at a time.

    A watch that re-lists after an outage (410 Gone) sends no DELETED events for what
    went meanwhile: a deleted run would keep its concurrency slot and its Jobs would be
    re-created. What the listing lacks is dropped at the end, unless the store saw it at
    a newer version than the listing covers (created meanwhile). Only names and uids of
    the listed objects are kept between pages.
    """

    def __init__(self, store: Store, *, finished: bool = True, jobs: bool = True) -> None:
        self.store = store
        self.finished = finished
        """The listing includes finished runs (else only unfinished ones were asked for)."""
        self.jobs_listed = jobs
        self._listed: dict[Key, str] = {}
        self._live: dict[str, set[str]] = defaultdict(set)
        self.gone: list[RunEntry] = []
        """Runs that went: the runs waiting behind them move on."""
        self.changed: set[Key] = set()
        """Runs the listing told something new (a Job that finished unseen): to reconcile."""
        self.orphans: dict[str, list[dict[str, Any]]] = defaultdict(list)
        """By run uid: live Jobs of runs the store does not hold (finished, at start-up,
        with their last pod still stopping): their runs may still hold a slot."""

    def runs(self, page: list[dict[str, Any]]) -> None:
        store = self.store
        for body in page:
            meta = body["metadata"]
            key, uid = (meta["namespace"], meta["name"]), str(meta.get("uid", ""))
            self._listed[key] = uid
            seen = store.runs.get(key)
            if seen is not None and seen.uid != uid and not older(body, seen.body):
                store.forget_run(key)  # deleted and re-created under the same name
                self.gone.append(seen)
                seen = None
            store.observe_run(body)
            if store.runs.get(key) is not seen:
                self.changed.add(key)

    def jobs(self, page: list[dict[str, Any]]) -> None:
        store = self.store
        for body in page:
            owner = wire.run_owner(body)
            name = body["metadata"]["name"]
            if owner is not None:
                self._live[owner[1]].add(name)
            before = store.attempts.get(owner[1], {}).get(name) if owner else None
            key = store.observe_job(body)
            if owner is not None and key is None and _live(body):
                self.orphans[owner[1]].append(body)
            after = store.attempts.get(owner[1], {}).get(name) if owner else None
            if key is not None and (before is None or after is None or before.state != after.state):
                self.changed.add(key)

    def finish(self, version: int) -> tuple[list[RunEntry], set[Key]]:
        """Drop what the listing (covering ``version``) lacks; returns (gone, changed)."""
        store = self.store
        for key, entry in list(store.runs.items()):
            if self._listed.get(key) != entry.uid and (entry.resource_version or 0) <= version:
                store.forget_run(key)
                self.gone.append(entry)
        for key, finished in list(store.finished.items()) if self.finished else ():
            # Finished runs deleted by anyone but the operator: the run watch, which follows
            # unfinished runs only, does not see that.
            if key not in self._listed and 0 < finished.version <= version:
                store.forget_run(key)
        for uid, known in store.attempts.items() if self.jobs_listed else ():
            for job, attempt in list(known.items()):
                if job not in self._live.get(uid, ()) and 0 < attempt.resource_version <= version:
                    del known[job]
        store.settle_lingering()
        return self.gone, self.changed


def _live(job: dict[str, Any]) -> bool:
    attempt = attempt_of(job)
    return attempt is not None and attempt.live


def relist(
    store: Store, runs: list[dict[str, Any]], jobs: list[dict[str, Any]], version: int
) -> tuple[list[RunEntry], set[Key]]:
    """Agree with one complete listing of every run and step Job, in one call."""
    relisting = Relisting(store)
    relisting.runs(runs)
    relisting.jobs(jobs)
    return relisting.finish(version)
