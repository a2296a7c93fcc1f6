"""Static types users see: ``ctx.step_output(fn)`` is typed as the step's declared output.

Runs mypy on a small snippet and reads its ``reveal_type`` notes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kubehatch

pytest.importorskip(
    "mypy", reason="mypy is not installed (pip install mypy) to check the SDK's static types"
)

SNIPPET = """
    from dataclasses import dataclass

    from pydantic import BaseModel

    from kubehatch import Context, Fn, Worker


    class StepOutput(BaseModel):
        message: str


    @dataclass
    class Total:
        amount: int


    def first(ctx: Context) -> StepOutput:
        return StepOutput(message="one")


    async def first_async(ctx: Context) -> Total:
        return Total(1)


    step_one = Fn(first).set_name("step-one")
    async_step = Fn(first_async)
    called = Worker("w").new_service("s").call("action")


    def second(ctx: Context) -> None:
        reveal_type(step_one)
        reveal_type(ctx.step_output(step_one))
        reveal_type(ctx.step_output(async_step))
        reveal_type(ctx.step_output(called))
        reveal_type(ctx.step_output("step-one"))
        reveal_type(ctx.step_output("step-one", Total))
        reveal_type(ctx.step_output(step_one, Total))
"""


def revealed_types(tmp_path: Path) -> list[str]:
    """mypy's revealed types for SNIPPET, in order; fails on any error mypy reports."""
    source = tmp_path / "snippet.py"
    source.write_text(textwrap.dedent(SNIPPET))
    config = tmp_path / "mypy.ini"
    sdk = Path(kubehatch.__file__).resolve().parent.parent  # the folder holding kubehatch/
    config.write_text(
        "[mypy]\n"
        f"mypy_path = {sdk}\n"
        "python_version = 3.11\n"
        "follow_imports = silent\n"
        f"cache_dir = {tmp_path / 'mypy-cache'}\n"
    )
    # In a process of its own: mypy's compiled modules run twice in one interpreter (this
    # test and the decorators') can abort it at exit.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", f"--config-file={config}", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    stdout, stderr = done.stdout, done.stderr
    assert "error:" not in stdout + stderr, stdout + stderr
    return re.findall(r'Revealed type is "([^"]+)"', stdout)


def test_step_output_of_an_fn_is_typed_as_its_functions_return_type(tmp_path: Path) -> None:
    assert revealed_types(tmp_path) == [
        "kubehatch.steps.Fn[snippet.StepOutput]",
        "snippet.StepOutput",  # ctx.step_output(step_one)
        "snippet.Total",  # an async step: what it awaits to
        "Any",  # an Fn from service.call(): the action's type is unknown here
        "Any",  # by name
        "snippet.Total",  # by name, with a model
        "snippet.Total",  # an explicit model wins
    ]
