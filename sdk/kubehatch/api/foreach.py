"""A forEach step's list and how its items add up: the one definition of the rules.

Pure: the operator (``kubehatch_operator.fanout``, one Job per item) and the local
engine (``kubehatch._localitems``, one item after the other) both work out the items,
and end the step, with these functions, so a forEach step ends with the same output,
phase and message on a cluster and in a test.
"""

from __future__ import annotations

import json
from typing import Any

from kubehatch.api.cel import items as evaluate_items
from kubehatch.api.step import MAX_ITEMS

MAX_ITEM_BYTES = 64 * 1024
"""One item as JSON: it is handed to its pod in an environment variable."""
MAX_GATHERED_BYTES = 1024 * 1024 - 64 * 1024
"""The items' outputs together: one ConfigMap, written by the operator."""
NO_ITEMS = "forEach gave no items"
"""The message of a forEach step whose list is empty (it succeeds with [])."""


def item_texts(
    expression: str, run_input: Any, metadata: dict[str, str] | None, parents: dict[str, Any]
) -> list[str]:
    """The items of forEach ``expression`` as JSON texts (what each item's pod gets).

    Raises ``ValueError`` saying why there are none: the expression fails or gives no
    list, there are too many, or one is too large.
    """
    values = evaluate_items(expression, run_input, metadata, parents)
    if len(values) > MAX_ITEMS:
        raise ValueError(
            f"forEach {expression!r} gave {len(values)} items, more than {MAX_ITEMS}; "
            "split the work into batches (items that are lists) or child runs"
        )
    texts = [json.dumps(value, separators=(",", ":")) for value in values]
    for index, text in enumerate(texts):
        if len(text.encode()) > MAX_ITEM_BYTES:
            raise ValueError(
                f"item {index} of forEach {expression!r} is {len(text.encode())} "
                f"bytes, more than an item may be ({MAX_ITEM_BYTES}); make items references "
                "(ids, URLs) to the data"
            )
    return texts


def item_failed(index: int, message: str | None, succeeded: int, total: int) -> str:
    """Why a forEach step failed: its first item that failed (after its retries), with
    what that item's last attempt said (``failed: ...``, ``exceeded the step timeout``)."""
    return f"item {index} {message or 'failed'} ({succeeded} of {total} items succeeded)"


def gathered(outputs: list[Any], succeeded: int, failed: int) -> tuple[str, str | None]:
    """The step's output once every item is done (None for an item that failed), as JSON,
    and its message (None when every item succeeded).

    Raises ``ValueError`` when the outputs together are more than a step's output may be.
    """
    total = len(outputs)
    text = json.dumps(outputs, separators=(",", ":"))
    if len(text.encode()) > MAX_GATHERED_BYTES:
        raise ValueError(
            f"the outputs of its {total} items total {len(text.encode())} bytes, more than "
            f"a forEach step's output may be ({MAX_GATHERED_BYTES}); have each item return "
            "less (a reference)"
        )
    message = f"{succeeded} items succeeded; {failed} of {total} items failed" if failed else None
    return text, message
