"""At most one run at a time: every run gets the same concurrency key."""

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, Worker


def get_concurrency_key(ctx: Context) -> str:
    return "my-key"


worker = Worker("concurrency-worker", image=IMAGE)
wf = worker.workflow(
    "concurrency-limit",
    description="This limits concurrency to 1 run at a time.",
    on=Events("concurrency-test-event"),
    concurrency=Concurrency(get_concurrency_key).max_runs(1),
)


@wf.step
def work(ctx: Context) -> dict[str, bool]:
    return {"done": True}
