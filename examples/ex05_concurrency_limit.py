"""At most one run at a time: every run gets the same concurrency key."""

from examples import IMAGE
from kubehatch import Concurrency, Context, Events, Fn, Worker, WorkflowJob
from kubehatch.testing import concurrency_key, run_workflow


def get_concurrency_key(ctx: Context) -> str:
    return "my-key"


def work(ctx: Context) -> dict[str, bool]:
    return {"done": True}


worker = Worker("concurrency-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="concurrency-limit",
        description="This limits concurrency to 1 run at a time.",
        on=Events("concurrency-test-event"),
        concurrency=Concurrency(get_concurrency_key).max_runs(1),
        steps=[Fn(work)],
    )
)

if __name__ == "__main__":
    print(concurrency_key(worker, "concurrency-limit"), run_workflow(worker, "concurrency-limit"))
