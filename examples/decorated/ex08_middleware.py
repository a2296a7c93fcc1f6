"""Middleware: the same in both styles (``worker.use``, ``service.use``)."""

from typing import Any

from examples import IMAGE
from examples.ex08_middleware import add_test_value, timing
from kubehatch import Context, Worker

worker = Worker("middleware-worker", image=IMAGE)
worker.use(timing)
service = worker.new_service("middleware").use(add_test_value)
wf = service.workflow("middleware-workflow")


@wf.step
def read_value(ctx: Context) -> dict[str, Any]:
    return {"testkey": ctx.value("testkey")}
