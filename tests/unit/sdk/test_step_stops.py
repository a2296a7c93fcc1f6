"""A step stopped from outside its code: its timeout (SIGALRM) and the pod's SIGTERM.

Sync and async steps alike: a sync step runs in a thread of its own, so the pod stops
waiting for it and ends (the daemon thread is left behind); an async one is cancelled
with its event loop. Nothing is stored either way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kubehatch import _steprunner as steprunner
from kubehatch.api.wire import EXIT_CANCELLED, EXIT_TIMED_OUT
from tests.unit.sdk.test_steprunner import pod

__all__ = ["pod"]  # the fixture, shared

WORKER = """
import asyncio, os, signal, time
from kubehatch import Context, Fn, Worker, WorkflowJob

def stubborn(ctx: Context) -> dict:
    time.sleep(3)  # never looks at ctx.cancelled
    return {"too": "late"}

def cooperative(ctx: Context) -> dict:
    ctx.wait_for_cancel(30)
    return {"stopped": True}

async def stubborn_async(ctx: Context) -> dict:
    await asyncio.sleep(3)
    return {"too": "late"}

def terminated(ctx: Context) -> dict:
    os.kill(os.getpid(), signal.SIGTERM)
    return {"stopped": ctx.wait_for_cancel(5)}

async def terminated_async(ctx: Context) -> dict:
    os.kill(os.getpid(), signal.SIGTERM)
    return {"stopped": await ctx.wait_for_cancel_async(5)}

worker = Worker("w", image="i:1")
for f in (stubborn, cooperative, stubborn_async, terminated, terminated_async):
    worker.register_workflow(WorkflowJob(name=f.__name__.replace("_", "-"), steps=[Fn(f)]))
"""


@pytest.fixture
def stopping(pod: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "stoppingworker.py").write_text(WORKER)
    pod["env"] = {**pod["env"], "KUBEHATCH_WORKER": "stoppingworker:worker"}
    pod["env"]["KUBEHATCH_PARENTS"] = ""
    return pod


@pytest.mark.parametrize(
    "action", ["stubborn:stubborn", "cooperative:cooperative", "stubborn-async:stubborn-async"]
)
def test_a_step_past_its_timeout_is_timed_out_without_waiting_for_it(
    stopping: dict[str, Any], action: str
) -> None:
    env = {**stopping["env"], "KUBEHATCH_ACTION": action, "KUBEHATCH_TIMEOUT_SECONDS": "1"}
    started = time.monotonic()
    assert steprunner.main(env) == EXIT_TIMED_OUT
    assert time.monotonic() - started < 2.5  # the 3 s of a stubborn step are not waited for
    assert stopping["log"].read_text() == ("timed out: the step ran longer than its timeout of 1s")
    assert "text" not in stopping  # nothing was stored


@pytest.mark.parametrize("action", ["terminated:terminated", "terminated-async:terminated-async"])
def test_sigterm_cancels_the_step_and_its_output_is_not_stored(
    stopping: dict[str, Any], action: str
) -> None:
    env = {**stopping["env"], "KUBEHATCH_ACTION": action}
    assert steprunner.main(env) == EXIT_CANCELLED
    assert stopping["log"].read_text() == "cancelled: the step received SIGTERM"
    assert "text" not in stopping
