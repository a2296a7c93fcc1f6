"""The dashboard's browser test: a step that prints a line after a pause, then a slow
step to cancel from the page."""

from __future__ import annotations

import time
from typing import Any

from kubehatch import Context, Fn, Worker, WorkflowJob

worker = Worker("dashboard", image="localhost/kubehatch/e2e:placeholder")
WORKER_REF = f"{__name__}:worker"
LINE = "hello from the dashboard test"


def hello(ctx: Context) -> dict[str, Any]:
    time.sleep(float(ctx.workflow_input().get("pause", 8)))
    print(LINE, flush=True)
    return {"greeting": "hi"}


def slow(ctx: Context) -> dict[str, Any]:
    time.sleep(600)
    return {}


_hello = Fn(hello)
worker.register_workflow(
    WorkflowJob(name="dashboard", steps=[_hello, Fn(slow).add_parents(_hello)])
)
