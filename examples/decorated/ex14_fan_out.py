"""Fan-out (see the builder-style module for the story)."""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Event, Worker

worker = Worker("fan-out-worker", image=IMAGE)
wf = worker.workflow(
    "make-album",
    description="Resize each uploaded image, five at a time, then make the album.",
    on=Event("upload:finished"),
)


@wf.step(retries=2, for_each="input.images", parallelism=5)
def resize(ctx: Context) -> dict[str, Any]:
    return {"image": ctx.item, "thumbnail": f"thumbs/{ctx.item}"}


@wf.step(parents=[resize])
def album(ctx: Context) -> dict[str, Any]:
    return {"thumbnails": [out["thumbnail"] for out in ctx.step_output(resize)]}
