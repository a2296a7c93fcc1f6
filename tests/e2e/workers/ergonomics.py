"""Workflows of tests/e2e/test_ergonomics.py: the decorator style with a typed input."""

from __future__ import annotations

from pydantic import BaseModel

from kubehatch import Context, Event, Worker

WORKER_REF = "tests.e2e.workers.ergonomics:worker"
"""What the Workflows' spec.worker names (the e2e image's default worker is another one)."""

# The tests replace the image with the one they built for this session.
worker = Worker("ergonomics", image="localhost/kubehatch/e2e:placeholder")


class Address(BaseModel):
    city: str
    zip: int


class Signup(BaseModel):
    username: str
    age: int
    address: Address


class Greeting(BaseModel):
    text: str


wf = worker.workflow("typed-signup", on=Event("e2e:signup"), input_validator=Signup)


@wf.step(name="greet", retries=1)
def greet(ctx: Context) -> Greeting:
    signup = wf.input(ctx)
    return Greeting(text=f"hello {signup.username} of {signup.address.city}")


@wf.step(name="shout", parents=[greet])
def shout(ctx: Context) -> dict[str, str]:
    return {"text": ctx.step_output(greet).text.upper()}
