"""Fan-out: resize every image of an upload, five at a time, then make an album.

``resize`` runs once per item of ``input.images`` (``forEach``), each item a Job of its
own with its own retries; at most five run at once (``parallelism``). ``ctx.item`` is
the item, ``ctx.item_index`` its place. The step's output is the list of the items'
outputs, in order, which ``album`` reads as its parent's output. The run's status counts
the items (``items: {total, succeeded, failed, running}``); it never lists them.
"""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Event, Fn, Worker, WorkflowJob


def resize(ctx: Context) -> dict[str, Any]:
    return {"image": ctx.item, "thumbnail": f"thumbs/{ctx.item}"}


def album(ctx: Context) -> dict[str, Any]:
    return {"thumbnails": [out["thumbnail"] for out in ctx.step_output("resize")]}


worker = Worker("fan-out-worker", image=IMAGE)
_resize = Fn(resize).set_for_each("input.images", parallelism=5).set_retries(2)
worker.register_workflow(
    WorkflowJob(
        name="make-album",
        description="Resize each uploaded image, five at a time, then make the album.",
        on=Event("upload:finished"),
        steps=[_resize, Fn(album).add_parents(_resize)],
    )
)
