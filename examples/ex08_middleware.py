"""Middleware: the worker's times every step; the service's hands the step a value.

Worker middleware wraps service middleware, which wraps the step. A middleware returns
``next(ctx)``'s result (or its own) and may wrap errors.
"""

import logging
import time
from typing import Any

from examples import IMAGE
from kubehatch import Context, Fn, Next, Worker, WorkflowJob
from kubehatch.testing import run_workflow

log = logging.getLogger(__name__)


class StepFailed(Exception):
    """Raised by the middleware around any error of a step."""


def timing(ctx: Context, next: Next) -> Any:
    start = time.perf_counter()
    try:
        return next(ctx)
    finally:
        log.info("step %s took %.3fs", ctx.step_name, time.perf_counter() - start)


def add_test_value(ctx: Context, next: Next) -> Any:
    try:
        return next(ctx.with_value("testkey", "testvalue"))
    except Exception as error:
        raise StepFailed(f"error in middleware: {error}") from error


def read_value(ctx: Context) -> dict[str, Any]:
    return {"testkey": ctx.value("testkey")}


worker = Worker("middleware-worker", image=IMAGE)
worker.use(timing)
service = worker.new_service("middleware").use(add_test_value)
service.register_workflow(WorkflowJob(name="middleware-workflow", steps=[Fn(read_value)]))

if __name__ == "__main__":
    print(run_workflow(worker, "middleware-workflow").outputs)
