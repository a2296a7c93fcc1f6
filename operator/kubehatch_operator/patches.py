"""JSON merge patches (RFC 7386) computed from the old and the new form of a document."""

from __future__ import annotations

from typing import Any


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The smallest merge patch turning `old` into `new`: changed keys, and null for removed ones.

    A plain dump of the new status is not enough: a merge patch keeps every key it does
    not mention, so a field that became empty (a step's old message) would linger.
    """
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif value != before or key not in old:
            patch[key] = value
    return patch
