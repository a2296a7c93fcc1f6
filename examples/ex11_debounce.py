"""Debounce: a burst of runs for one document leaves one run queued behind the running one.

Edits arriving as r1..r4 while nothing runs: r1 starts; with ``CancelQueuedExceptNewest``
r4 waits and r2, r3 are cancelled (reason ConcurrencyLimit), so the index ends up built
from the latest edit. ``CancelQueuedExceptOldest`` keeps r2 instead and cancels r3, r4:
the run already waiting covers the ones after it.
"""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, Fn, LimitStrategy, Worker, WorkflowJob
from kubehatch.testing import concurrency_key, run_workflow


class DocumentEdit(BaseModel):
    document_id: str


def reindex(ctx: Context) -> dict[str, str]:
    return {"reindexed": ctx.workflow_input(DocumentEdit).document_id}


worker = Worker("debounce-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="reindex-document",
        description="One reindex at a time per document; only the newest queued edit is kept.",
        on=Events("document:edited"),
        concurrency=Concurrency.expression("input.document_id")
        .max_runs(1)
        .limit_strategy(LimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST),
        steps=[Fn(reindex)],
    )
)
worker.register_workflow(
    WorkflowJob(
        name="reindex-document-oldest",
        description="The same, keeping the oldest queued edit; later ones are cancelled.",
        on=Events("document:edited"),
        concurrency=Concurrency.expression("input.document_id")
        .max_runs(1)
        .limit_strategy(LimitStrategy.CANCEL_QUEUED_EXCEPT_OLDEST),
        steps=[Fn(reindex)],
    )
)

if __name__ == "__main__":
    edit = {"document_id": "doc-7"}
    for name in ("reindex-document", "reindex-document-oldest"):
        print(name, concurrency_key(worker, name, edit), run_workflow(worker, name, edit).outputs)
