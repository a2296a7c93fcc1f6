"""Two steps: ``step-two`` waits for ``step-one`` and reads its output, typed.

The input model is the workflow's ``input_validator``: its JSON Schema goes into the
Workflow, and ``wf.input(ctx)`` parses the input into it.
"""

from pydantic import BaseModel

from examples import IMAGE
from kubehatch import Context, Events, Worker


class UserCreateEvent(BaseModel):
    username: str


class StepOutput(BaseModel):
    message: str


worker = Worker("two-step-worker", image=IMAGE)
wf = worker.workflow(
    "two-step-workflow",
    description="This is an example two-step workflow.",
    on=Events("user:create"),
    input_validator=UserCreateEvent,
)


@wf.step(name="step-one")
def first(ctx: Context) -> StepOutput:
    return StepOutput(message=f"Username is: {wf.input(ctx).username}")


@wf.step(name="step-two", parents=[first])
def second(ctx: Context) -> StepOutput:
    above = ctx.step_output(first)  # a StepOutput
    return StepOutput(message=f"Above message is: {above.message}")
