"""Two steps: ``step-two`` waits for ``step-one`` and reads its output.

Input and outputs are pydantic models; ``ctx.step_output(step_one)`` parses the parent's
output into the model its function declares. ``input_validator`` puts the input model's
JSON Schema into the Workflow: runs whose input does not fit are refused.
"""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Context, Events, Fn, Worker, WorkflowJob
from kubehatch.testing import run_workflow


class UserCreateEvent(BaseModel):
    username: str


class StepOutput(BaseModel):
    message: str


def first(ctx: Context) -> StepOutput:
    event = ctx.workflow_input(UserCreateEvent)
    return StepOutput(message=f"Username is: {event.username}")


def second(ctx: Context) -> StepOutput:
    above = ctx.step_output(step_one)
    return StepOutput(message=f"Above message is: {above.message}")


step_one = Fn(first).set_name("step-one")
step_two = Fn(second).set_name("step-two").add_parents(step_one)

worker = Worker("two-step-worker", image=IMAGE)
worker.register_workflow(
    WorkflowJob(
        name="two-step-workflow",
        description="This is an example two-step workflow.",
        on=Events("user:create"),
        input_validator=UserCreateEvent,
        steps=[step_one, step_two],
    )
)

if __name__ == "__main__":
    print(run_workflow(worker, "two-step-workflow", {"username": "ada"}).outputs)
