"""Listing everything of a kind, a page at a time: what start-up and relisting read.

The store is filled from pages as they arrive, so that the operator never holds
20,000 runs' full objects at once; only what the store keeps of each one stays.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from fnmatch import fnmatch
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubehatch.api import wire
from kubehatch_operator.metrics import API_READS
from kubehatch_operator.watching import scopes

LIST_PAGE = 500
"""Objects per list response when the operator lists everything (start-up, relisting)."""


class Lister:
    def __init__(self, custom: client.CustomObjectsApi, batch: client.BatchV1Api) -> None:
        self.custom = custom
        self.batch = batch

    async def objects(
        self, plural: str, namespaces: tuple[str, ...]
    ) -> tuple[list[dict[str, Any]], int]:
        """Every object of one of kubehatch's kinds (or managed Jobs) in the namespaces,
        and the oldest resourceVersion of the lists (what the listing is known to cover)."""
        found: list[dict[str, Any]] = []
        version = await self.each_page(plural, namespaces, found.extend)
        return found, version

    async def selects(self, plural: str, namespaces: tuple[str, ...], selector: str) -> bool:
        """Whether the API server filters ``plural`` by this field selector (False when it
        answers 400: a Kubernetes before 1.31, or a CRD without selectableFields)."""
        namespace = scopes(namespaces)[0]
        try:
            await self._list_page(plural, namespace, {"limit": 1, "field_selector": selector})
        except ApiException as err:
            if err.status == 400:
                return False
            raise
        return True

    async def each_page(
        self,
        plural: str,
        namespaces: tuple[str, ...],
        consume: Callable[[list[dict[str, Any]]], object],
        *,
        field_selector: str | None = None,
    ) -> int:
        """Hand every object to ``consume``, a page (LIST_PAGE objects) at a time, so that
        20,000 runs are never in memory at once; returns the oldest resourceVersion of
        the lists (what the listing is known to cover).

        Exact names are listed one by one (namespaced RBAC grants nothing more); globs and
        "all" are listed cluster-wide and filtered here. Always from etcd: the watch cache
        answers a list at resourceVersion 0 in one piece, whatever its limit (measured:
        3,820 ConfigMaps for limit=2).
        """
        options: dict[str, Any] = {}
        if field_selector:
            options["field_selector"] = field_selector
        where = scopes(namespaces)
        if where != [None]:
            versions = [await self._pages(plural, n, options, consume) for n in where]
            return min(versions, default=0)

        def matching(items: list[dict[str, Any]]) -> object:
            ns = [
                i for i in items if any(fnmatch(i["metadata"]["namespace"], n) for n in namespaces)
            ]
            return consume(ns)

        return await self._pages(plural, None, options, matching if namespaces else consume)

    async def _pages(
        self,
        plural: str,
        namespace: str | None,
        first: dict[str, Any],
        consume: Callable[[list[dict[str, Any]]], object],
    ) -> int:
        options = {**first, "limit": LIST_PAGE}
        while True:
            listed = await self._list_page(plural, namespace, options)
            API_READS.labels("list", plural).inc()
            consume(listed.get("items") or [])
            meta = listed.get("metadata") or {}
            del listed
            if not meta.get("continue"):
                break
            # The same query, from where the page ended (no resourceVersion with a token).
            options = {
                **{k: v for k, v in first.items() if k != "resource_version"},
                "limit": LIST_PAGE, "_continue": meta["continue"],
            }  # fmt: skip
        version = meta.get("resourceVersion") or "0"
        return int(version) if version.isdigit() else 0

    async def _list_page(
        self, plural: str, namespace: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        call: tuple[Any, ...]
        if plural == "jobs":
            selector = f"{wire.LABEL_MANAGED_BY}={wire.MANAGED_BY}"
            # Plain JSON: the client's typed models cost far more memory and CPU.
            options = {**options, "label_selector": selector, "_preload_content": False}
            call = (
                (self.batch.list_job_for_all_namespaces,)
                if namespace is None
                else (self.batch.list_namespaced_job, namespace)
            )
            result = await asyncio.to_thread(*call, **options)
            return dict(json.loads(result.data))
        call = (
            (self.custom.list_cluster_custom_object, wire.GROUP, wire.VERSION, plural)
            if namespace is None
            else (
                self.custom.list_namespaced_custom_object,
                wire.GROUP,
                wire.VERSION,
                namespace,
                plural,
            )
        )
        return dict(await asyncio.to_thread(*call, **options))
