"""A workflow that waits for a person: approve (or reject) a deploy, then do it."""

from __future__ import annotations

from typing import Any

from kubehatch import Approval, Context, Fn, Worker, WorkflowJob

# The tests replace the image with the one they built for this session.
worker = Worker("approvals", image="localhost/kubehatch/e2e:placeholder")
WORKER_REF = f"{__name__}:worker"

ask = Approval("deploy to production?").set_name("ok")


def deploy(ctx: Context) -> dict[str, Any]:
    answer = ctx.step_output(ask)
    return {"deployed": True, "approver": answer["approver"], "comment": answer["comment"]}


worker.register_workflow(WorkflowJob(name="gate", steps=[ask, Fn(deploy).add_parents(ask)]))
