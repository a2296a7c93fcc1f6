"""forEach steps in the local engine: the step runs once per item, as the operator runs
one Job per item, with the rules of :mod:`kubehatch.api.foreach`.

The list is worked out from the forEach expression (over the input, the metadata and
the outputs of the parents that succeeded, as read on a cluster); each item runs with
``ctx.item`` and ``ctx.item_index`` set and its own attempts (its retries, its timeout).
Locally the items run one after the other, as with ``parallelism: 1``: an item that
fails after its retries fails the step at once ("item 2 failed: ... (2 of 5 items
succeeded)"), unless ``continueOnItemFailure`` leaves None in its place and goes on. The
step's output is the list of the items' outputs, in order; an empty list succeeds with
``[]`` ("forEach gave no items").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubehatch._localattempts import Ended
from kubehatch.api import foreach
from kubehatch.api.readiness import Readiness
from kubehatch.api.step import StepSpec
from kubehatch.api.workflowrun import StepPhase
from kubehatch.errors import KubehatchError

RunItem = Callable[[int, Any], Ended]
"""Runs the attempts of one item (its index, the item as its pod reads it) to its end."""


def run_items(
    step: StepSpec,
    run_input: Any,
    metadata: dict[str, str],
    parents: dict[str, Any] | Readiness,
    run_item: RunItem,
) -> Ended:
    """Run the items of forEach ``step``; ``parents`` are the outputs its list reads (or
    why one cannot be read)."""
    assert step.for_each is not None
    if isinstance(parents, Readiness):
        return _failed(parents.fail or "forEach cannot read its parents' outputs")
    try:
        texts = foreach.item_texts(step.for_each, run_input, metadata, parents)
    except ValueError as error:
        return _failed(str(error))
    if not texts:
        return Ended(StepPhase.SUCCEEDED, output=[], message=foreach.NO_ITEMS)
    total, outputs = len(texts), []
    succeeded = failed = attempts = 0
    for index, text in enumerate(texts):
        ended = run_item(index, json.loads(text))
        attempts = max(attempts, ended.attempt)
        if ended.phase is StepPhase.SUCCEEDED:
            outputs.append(ended.output)
            succeeded += 1
            continue
        if ended.phase is StepPhase.CANCELLED or not step.continue_on_item_failure:
            why = foreach.item_failed(index, ended.message, succeeded, total)
            phase = StepPhase.CANCELLED if ended.phase is StepPhase.CANCELLED else StepPhase.FAILED
            if ended.error is not None:
                ended.error.add_note(f"in item {index} of the forEach step")
            return Ended(phase, attempts, message=why, error=ended.error)
        outputs.append(None)
        failed += 1
    try:
        gathered, message = foreach.gathered(outputs, succeeded, failed)
    except ValueError as error:
        return _failed(str(error), attempts)
    return Ended(StepPhase.SUCCEEDED, attempts, json.loads(gathered), message)


def _failed(message: str, attempts: int = 0) -> Ended:
    return Ended(StepPhase.FAILED, attempts, message=message, error=KubehatchError(message))
