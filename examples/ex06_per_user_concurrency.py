"""One run at a time per user: the key is the user id from the input.

Two ways to compute it: a key function (runs in a pod, can do anything) and a CEL
expression (evaluated by the operator itself, nothing to start).
"""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, Fn, LimitStrategy, Worker, WorkflowJob
from kubehatch.testing import concurrency_key


class MyUser(BaseModel):
    user_id: str


def user_key(ctx: Context) -> str:
    return ctx.workflow_input(MyUser).user_id


def sync_user(ctx: Context) -> dict[str, str]:
    return {"synced": ctx.workflow_input(MyUser).user_id}


worker = Worker("per-user-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="concurrency-limit-per-user",
        description="This limits concurrency to 1 run at a time per user.",
        on=Events("concurrency-test-event"),
        concurrency=Concurrency(user_key).max_runs(1),
        steps=[Fn(sync_user)],
    )
)
worker.register_workflow(
    WorkflowJob(
        name="concurrency-limit-per-user-cel",
        description="The same limit with a CEL key; queued runs take turns across users.",
        on=Events("concurrency-test-event"),
        concurrency=Concurrency.expression("input.user_id")
        .max_runs(1)
        .limit_strategy(LimitStrategy.GROUP_ROUND_ROBIN),
        steps=[Fn(sync_user)],
    )
)

if __name__ == "__main__":
    for name in ("concurrency-limit-per-user", "concurrency-limit-per-user-cel"):
        print(name, concurrency_key(worker, name, {"user_id": "u-42"}))
