"""A registered action re-used as a step: ``wf.add(service.call(...))``."""

from typing import Any

from examples import IMAGE
from kubehatch import Context, Event, Worker


def send_email(ctx: Context) -> dict[str, Any]:
    return {"sent_to": ctx.workflow_input().get("email", "nobody")}


worker = Worker("action-worker", image=IMAGE)
test_service = worker.new_service("test")
test_service.register_action(send_email, name="step-one")

action_wf = test_service.workflow(
    "action-workflow", description="Runs the registered step-one action.", on=Event("user:created")
)
action_wf.add(test_service.call("step-one"))

audited = worker.workflow(
    "audited-action-workflow",
    description="Runs the same action from another service, then audits it.",
)
step_one = audited.add(worker.call("test:step-one"))


@audited.step(parents=[step_one])
def audit(ctx: Context) -> dict[str, Any]:
    return {"audited": ctx.step_output(step_one)}
