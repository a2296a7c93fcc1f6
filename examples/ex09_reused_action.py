"""A registered action re-used as a step: ``service.call(...)`` and ``worker.call(...)``."""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Event, Fn, Worker, WorkflowJob
from kubehatch.testing import run_workflow


def send_email(ctx: Context) -> dict[str, Any]:
    return {"sent_to": ctx.workflow_input().get("email", "nobody")}


def audit(ctx: Context) -> dict[str, Any]:
    return {"audited": ctx.step_output("step-one")}


worker = Worker("action-worker", image=IMAGE)
test_service = worker.new_service("test")
test_service.register_action(send_email, name="step-one")

test_service.register_workflow(
    WorkflowJob(
        name="action-workflow",
        description="Runs the registered step-one action.",
        on=Event("user:created"),
        steps=[test_service.call("step-one")],
    )
)
worker.register_workflow(
    WorkflowJob(
        name="audited-action-workflow",
        description="Runs the same action from another service, then audits it.",
        steps=[worker.call("test:step-one"), Fn(audit).add_parents("step-one")],
    )
)

if __name__ == "__main__":
    print(run_workflow(worker, "audited-action-workflow", {"email": "ada@example.com"}).outputs)
