"""No-op steps for `make bench`: what is measured is the engine, not the work.

A worker of its own, importing only what a plain user's worker does, so that a step
pod costs what `kubehatch step` costs, as `python3 -c pass` in the peer's pods does.
"""

from __future__ import annotations

from kubehatch import Context, Fn, Worker, WorkflowJob

worker = Worker("bench", image="localhost/kubehatch/e2e:unused")


def noop(ctx: Context) -> None:
    """Does nothing."""


def _noop_chain(length: int) -> list[Fn[None]]:
    steps: list[Fn[None]] = []
    for i in range(1, length + 1):
        step = Fn(noop).set_name(f"s{i}")
        steps.append(step.add_parents(steps[-1]) if steps else step)
    return steps


worker.register_workflow(WorkflowJob(name="noop-chain", steps=_noop_chain(5)))
worker.register_workflow(WorkflowJob(name="noop", steps=_noop_chain(1)))
