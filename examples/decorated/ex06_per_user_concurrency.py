"""One run at a time per user: a key function, and the same with a CEL expression."""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, LimitStrategy, Worker


class MyUser(BaseModel):
    user_id: str


def user_key(ctx: Context) -> str:
    return ctx.workflow_input(MyUser).user_id


def sync_user(ctx: Context) -> dict[str, str]:
    return {"synced": ctx.workflow_input(MyUser).user_id}


worker = Worker("per-user-worker", image=IMAGE)
worker.workflow(
    "concurrency-limit-per-user",
    description="This limits concurrency to 1 run at a time per user.",
    on=Events("concurrency-test-event"),
    concurrency=Concurrency(user_key).max_runs(1),
).step(sync_user)
worker.workflow(
    "concurrency-limit-per-user-cel",
    description="The same limit with a CEL key; queued runs take turns across users.",
    on=Events("concurrency-test-event"),
    concurrency=Concurrency.expression("input.user_id")
    .max_runs(1)
    .limit_strategy(LimitStrategy.GROUP_ROUND_ROBIN),
).step(sync_user)
