"""The resource reference (docs/reference.md), generated from the same schemas as the CRDs.

Usage: ``python -m kubehatch.api.docgen [--check] FILE``. With ``--check`` nothing is
written and the exit status is 1 when FILE is stale (a unit test runs this).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kubehatch.api import RESOURCES
from kubehatch.api.crdgen import crd

HEADER = """# Resource reference

Generated from the pydantic API types by `make docs` (`python -m kubehatch.api.docgen`);
do not edit. `kubectl explain workflow.spec.steps` shows the same descriptions.
"""


# Hand-written: how the operator applies spec.concurrency (kubehatch_operator.admission).
QUEUES = """
## Concurrency and queues

How the operator applies a Workflow's `spec.concurrency`. Every run has a key: the value
of `expression` (CEL over `input` and `additional_metadata`, evaluated by the operator) or
what the key `action` returned (a pod computes it before the run starts; until then the
run neither holds nor wants a slot). A run holds a slot from its start until its last pod
has stopped, also while it is being cancelled; a run with a `scheduledAt` competes for a
slot from that time on.

- **The limit of a key** is `maxRuns`, or, with `maxRunsExpression`, the value the
  expression gives for the key's newest run (each run records its own in
  `status.concurrencyLimit`). It counts the runs of one key, with every strategy.
- **`maxRunsTotal`** counts the runs of all keys together. A free slot goes to a queued
  run whose key is also under its own limit. It needs a strategy that queues: the API
  server and the SDK refuse it with `CancelInProgress` and `CancelNewest`.
- **Queue order**: the higher `priority` first (1 to 3; a run without one takes
  `spec.defaultPriority`, else 1), then arrival: creation time, then the order in which
  the operator first saw the runs (`status.arrival`), then the name.
"""

STRATEGIES = (
    ("Strategy", "A run over its key's limit", "Next to start", "Priority", "`maxRunsTotal`"),
    (
        "`CancelInProgress` (default)",
        "starts; the key's oldest runs beyond the limit, running or not, are cancelled",
        "nothing waits",
        "ignored: the newest runs win",
        "refused",
    ),
    (
        "`CancelNewest`",
        "is cancelled; the runs holding the slots go on",
        "nothing waits",
        "decides which of the runs arriving together take the free slots",
        "refused",
    ),
    (
        "`QueueNewest`",
        "waits (phase `Queued`)",
        "the first queued run of a key with room, in queue order",
        "queue order",
        "free slots go in queue order across keys",
    ),
    (
        "`GroupRoundRobin`",
        "waits",
        "without `maxRunsTotal`, as `QueueNewest`; with it, the next key in turn",
        "queue order within a key; a key whose first queued run has a higher priority is "
        "served before the others",
        "free slots go to the keys in turn",
    ),
    (
        "`CancelQueuedExceptNewest`",
        "waits; its key keeps one queued run, the newest to arrive, and the other queued "
        "runs are cancelled",
        "as `QueueNewest`",
        "queue order decides who starts; the run kept is the newest whatever its priority",
        "as `QueueNewest`",
    ),
    (
        "`CancelQueuedExceptOldest`",
        "waits; its key keeps one queued run, the first in queue order, and the later "
        "ones are cancelled",
        "as `QueueNewest`",
        "queue order",
        "as `QueueNewest`",
    ),
)

QUEUES_RULES = """
- **Turns** (`GroupRoundRobin` with `maxRunsTotal`): keys are taken in the order of their
  names, starting after the key that took the last slot and wrapping around; after an
  operator restart, after the key of the run that started last; with neither, at the key
  of the first run in queue order. Keys with nothing queued
  or no room under their own limit are skipped. Only the keys whose first queued run has
  the highest priority take part in a turn.
- **Debounce** (`CancelQueuedExcept*`): the free slots are handed out first, then each key
  keeps one queued run, so a burst that arrives at once ends as its runs would have ended
  arriving one at a time.
- **Changing limits**: when a newer run lowers its key's limit, the queueing strategies
  let the running runs finish and start nothing until the key is under the new limit;
  `CancelInProgress` cancels the oldest runs beyond it.
- **`queueTimeout`**: a queued run that waited longer, counted from its creation or its
  `scheduledAt` (the later), is cancelled; the operator looks at it at that moment even
  when no slot frees.

What the run's `Succeeded` condition says:
"""

CONDITIONS = (
    ("Phase", "Condition", "When", "Message"),
    (
        "`Queued`",
        "`Unknown`, reason `Queued`",
        "the run waits for a slot",
        'its key, "number N of M in the queue", up to three runs holding the slots, the '
        "strategy and the limits",
    ),
    (
        "`Cancelled`",
        "`False`, reason `ConcurrencyLimit`",
        "the strategy cancelled the run",
        "the strategy, the key, the limits, and why (e.g. a newer run took its slot, or "
        "only the newest queued run is kept)",
    ),
    (
        "`Cancelled`",
        "`False`, reason `QueueTimeout`",
        "it waited longer than `queueTimeout`",
        "how long it waited, and its key",
    ),
    (
        "`Queued`",
        "`Unknown`, reason `SharedLimitConflict`",
        "Workflows sharing its limit declare different settings",
        "the Workflows and what must match",
    ),
    (
        "`Failed`",
        "`False`, reason `ConcurrencyKeyFailed`",
        "the key or limit expression failed, or the limit was not a whole number of at least 1",
        "the expression and the error",
    ),
)

QUEUES_NOTES = """
The position in the queue is as of the run's last pass: it is not rewritten each time the
queue moves, so that freeing a slot costs the same however long the queue.

**Shared limits.** Workflows whose `concurrency.shared` names the same limit (in one
namespace) pool their runs: the runs of one key count together, whichever workflow they
belong to, and the queue orders them all. Each Workflow keeps its own key expression (or
key action); the rest of the limit (`maxRuns`, `maxRunsExpression`, `maxRunsTotal`,
`limitStrategy`, `queueTimeout`) must be the same on each, or their runs wait, queued
with reason `SharedLimitConflict`, until it is.

**Rate limits.** A step's `rateLimits` entry takes `units` (default 1) of the limit named
`key` (or computed per run by `keyExpression`, CEL over `input` and
`additional_metadata`) for every attempt it starts. At most `limit` units are taken in
any window of `duration` (up to 24h): a sliding window, so the limit holds over every
window, not only over aligned ones. Every step of the namespace naming the key shares
its units. An attempt over a limit is not started: a first attempt stays `Pending`, a
retry stays `Retrying`, with a message naming the limit and the time a unit frees, and
the operator looks again then. A freed unit goes to the attempt held first (one that
does not ask again within 5 s of its turn is passed over). It never fails for it; a key
expression that fails the step fails it, saying why. The units an attempt took are
recorded on its Job (annotation `kubehatch.dev/rate-limits`), and the operator rebuilds
its count from the Jobs after a restart; the Jobs of runs deleted within the window are
forgotten then.

**Pods.** The chart value `stepPods.priorityClasses` (e.g. `{"3": "high"}`) sets the
PriorityClass of the step pods of runs of that priority. `stepPods.kueueQueue` names a
Kueue LocalQueue: step Jobs are created suspended with the label
`kueue.x-k8s.io/queue-name`, and Kueue starts each one when the cluster's quota allows
(it is not tested here: Kueue is not installed on the test cluster).

Differences from Hatchet: keys take turns in the order of their names, where Hatchet
follows the order of its own queue; priority orders the queued runs of one limit; the
queue position in a condition is a snapshot; a rate limit's size is declared on each
step that uses it (Hatchet keeps static limits in its engine).
"""


def _table(rows: Sequence[Sequence[str]]) -> str:
    header, *body = rows
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _type(schema: dict[str, Any]) -> str:
    kind: str = schema.get("type", "object" if "properties" in schema else "any")
    if kind == "array":
        return f"[]{_type(schema.get('items', {}))}"
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return "JSON"
    if "enum" in schema:
        return " \\| ".join(str(v) for v in schema["enum"])
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return kind


def _rows(schema: dict[str, Any], path: str) -> Iterator[tuple[str, str, str]]:
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        field = f"{path}.{name}"
        description = " ".join(sub.get("description", "").split())
        if name in required:
            description = f"**Required.** {description}"
        yield field, _type(sub), description.replace("|", "\\|")
        nested = sub.get("items", {}) if sub.get("type") == "array" else sub
        if "properties" in nested:
            yield from _rows(nested, f"{field}[]" if sub.get("type") == "array" else field)
        elif isinstance(sub.get("additionalProperties"), dict):
            yield from _rows(sub["additionalProperties"], f"{field}.<key>")


def reference() -> str:
    parts = [HEADER]
    for resource in RESOURCES:
        definition = crd(resource)
        version = definition["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        names = definition["spec"]["names"]
        parts.append(f"\n## {names['kind']}\n")
        parts.append(f"`{definition['spec']['group']}/{version['name']}`, short name "
                     f"`{names['shortNames'][0]}`. {resource.info.description}\n")  # fmt: skip
        parts.append("\n| Field | Type | Description |\n| --- | --- | --- |")
        for section in ("spec", "status"):
            if section in schema.get("properties", {}):
                for field, kind, text in _rows(schema["properties"][section], section):
                    if field.startswith("status.workflowSpec."):
                        continue  # a copy of Workflow spec, documented above
                    parts.append(f"| `{field}` | {kind} | {text} |")
        parts.append("")
    parts += [QUEUES, _table(STRATEGIES), QUEUES_RULES, _table(CONDITIONS), QUEUES_NOTES]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubehatch.api.docgen")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        if not args.file.exists() or args.file.read_text() != text:
            print(f"{args.file} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    args.file.parent.mkdir(parents=True, exist_ok=True)
    args.file.write_text(text)
    print(f"wrote {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
