"""Warm worker pools from Python: ``pool=`` on a workflow and on its steps."""

import sys
from typing import Any

import pytest
import yaml

from kubehatch import Context, Fn, RegistrationError, Worker, WorkflowJob, render_yaml
from kubehatch.api import WorkflowSpec
from kubehatch.testing import run_workflow


def line() -> int:
    """The caller's line number, to check where problems point."""
    return sys._getframe(1).f_lineno


def declare_pooled(worker: Worker) -> None:
    """A workflow on pool 'fast': one step on it, one in a Job of its own, one on 'gpu'."""
    wf = worker.workflow("pooled", pool="fast")

    @wf.step(name="prepare")
    def prepare(ctx: Context) -> dict[str, int]:
        return {"n": 1}

    @wf.step(name="isolated", parents=[prepare], pool="")
    def isolated(ctx: Context) -> dict[str, int]:
        return {"n": ctx.step_output(prepare)["n"] + 1}

    @wf.step(name="train", parents=[isolated], pool="gpu")
    def train(ctx: Context) -> dict[str, int]:
        return {"n": ctx.step_output(isolated)["n"] * 10}

    @wf.on_exit(name="cleanup", pool="")
    def cleanup(ctx: Context) -> None:
        return None


def rendered_spec(worker: Worker) -> dict[str, Any]:
    (document,) = yaml.safe_load_all(render_yaml(worker))
    spec: dict[str, Any] = document["spec"]
    return spec


def test_pools_render_into_the_spec_and_parse(worker: Worker) -> None:
    declare_pooled(worker)
    spec = rendered_spec(worker)
    assert spec["pool"] == "fast"
    pools = {step["name"]: step.get("pool") for step in spec["steps"]}
    assert pools == {"prepare": None, "isolated": "", "train": "gpu"}
    assert "pool" not in spec["steps"][0]  # None: left out, the workflow's pool applies
    assert spec["onExit"]["pool"] == ""

    parsed = WorkflowSpec.model_validate(spec)
    assert parsed.pool == "fast"
    by_step = {step.name: parsed.step_pool(step) for step in parsed.all_steps}
    assert by_step == {"prepare": "fast", "isolated": None, "train": "gpu", "cleanup": None}


def test_builder_style_sets_the_same_pools(worker: Worker) -> None:
    def step(ctx: Context) -> None:
        return None

    steps = [
        Fn(step).set_name("prepare"),
        Fn(step).set_name("isolated").set_pool("").add_parents("prepare"),
        Fn(step).set_name("train").set_pool("gpu").add_parents("isolated"),
    ]
    worker.register_workflow(WorkflowJob(name="pooled", steps=steps, pool="fast"))
    spec = rendered_spec(worker)
    assert spec["pool"] == "fast"
    assert [step.get("pool") for step in spec["steps"]] == [None, "", "gpu"]


def test_no_pool_renders_nothing_and_an_empty_workflow_pool_means_none(worker: Worker) -> None:
    worker.workflow("plain").step(name="only")(lambda ctx: None)
    worker.workflow("empty", pool="").step(name="only")(lambda ctx: None)
    for document in yaml.safe_load_all(render_yaml(worker)):
        assert "pool" not in document["spec"]
        assert all("pool" not in step for step in document["spec"]["steps"])


def test_invalid_pool_names_are_problems_at_their_lines(worker: Worker) -> None:
    wf = worker.workflow("pooled", pool="Fast_Pool")
    workflow_line = line() - 1

    @wf.step(name="train", pool="-gpu")
    def train(ctx: Context) -> None:
        return None

    step_line = line() - 4
    with pytest.raises(RegistrationError) as caught:
        worker.check()
    first, second = caught.value.problems
    assert first.origin.endswith(f"test_pool_declare.py:{workflow_line}")
    assert first.subject == "workflow 'pooled', pool"
    assert first.message.startswith("'Fast_Pool' is not a valid worker pool name: ")
    assert "a DNS label, e.g. 'fast'" in first.message
    assert second.origin.endswith(f"test_pool_declare.py:{step_line}")
    assert second.subject == "workflow 'pooled', step 'train', pool"
    assert second.message.startswith("'-gpu' is not a valid worker pool name: ")


def test_a_pool_name_that_is_not_a_string_is_a_problem(worker: Worker) -> None:
    def step(ctx: Context) -> None:
        return None

    bad: Any = 7
    worker.register_workflow(WorkflowJob(name="pooled", steps=[Fn(step)], pool=bad))
    (problem,) = worker.problems()
    assert problem.subject == "workflow 'pooled', pool"
    assert "valid string" in problem.message


def test_local_runs_ignore_pools(worker: Worker) -> None:
    declare_pooled(worker)
    run = run_workflow(worker, "pooled")
    assert run.succeeded
    assert run.outputs["train"] == {"n": 20}
    assert run.phases["cleanup"] == "Succeeded"
