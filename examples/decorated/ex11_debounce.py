"""Debounce: one run per document at a time, keeping the newest (or oldest) queued edit."""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, LimitStrategy, Worker


class DocumentEdit(BaseModel):
    document_id: str


def reindex(ctx: Context) -> dict[str, str]:
    return {"reindexed": ctx.workflow_input(DocumentEdit).document_id}


worker = Worker("debounce-worker", image=IMAGE)
for name, description, strategy in (
    (
        "reindex-document",
        "One reindex at a time per document; only the newest queued edit is kept.",
        LimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST,
    ),
    (
        "reindex-document-oldest",
        "The same, keeping the oldest queued edit; later ones are cancelled.",
        LimitStrategy.CANCEL_QUEUED_EXCEPT_OLDEST,
    ),
):
    worker.workflow(
        name,
        description=description,
        on=Events("document:edited"),
        concurrency=Concurrency.expression("input.document_id")
        .max_runs(1)
        .limit_strategy(strategy),
    ).step(reindex)
