"""Rendering a worker, loading one from "module:attr", and the kubehatch command."""

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubehatch import (
    Context,
    Fn,
    RegistrationError,
    Worker,
    WorkerLoadError,
    WorkflowJob,
    load_worker,
    render_yaml,
    workflow_manifests,
    workflow_resources,
)
from kubehatch.api import Workflow
from kubehatch.cli import build_parser, main, subcommands


def hello(ctx: Context) -> None:
    return None


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory with worker modules, as the working directory; modules forgotten after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body))


GOOD = """
    from kubehatch import Fn, Worker, WorkflowJob, Event

    def hello(ctx):
        return {"hi": True}

    worker = Worker("demo", image="demo:1")
    worker.register_workflow(WorkflowJob(name="hello", on=Event("x"), steps=[Fn(hello)]))

    class Holder:
        worker = worker
"""

BAD = """
    from kubehatch import Fn, Worker, WorkflowJob, Cron

    def two(ctx, extra):
        return None

    worker = Worker("demo", image="demo:1")
    worker.register_workflow(WorkflowJob(name="a", on=Cron("nope"), steps=[Fn(two)]))
    worker.register_workflow(WorkflowJob(name="a", steps=[Fn(two).add_parents("ghost")]))
"""


def test_resources_and_manifests(worker: Worker) -> None:
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(hello)]))
    (resource,) = workflow_resources(worker, worker_ref="pkg.mod:worker")
    assert isinstance(resource, Workflow)
    assert resource.metadata == {
        "name": "wf",
        "labels": {
            "app.kubernetes.io/managed-by": "kubehatch",
            "kubehatch.dev/worker": "test-worker",
        },
    }
    assert resource.spec.worker == "pkg.mod:worker"
    (manifest,) = workflow_manifests(worker)
    assert "worker" not in manifest["spec"]
    step = manifest["spec"]["steps"][0]
    assert step == {"name": "hello", "action": "wf:hello", "retries": 0}  # empty lists dropped
    assert "triggers" not in manifest["spec"]
    assert Workflow.model_validate(manifest).spec == resource.spec.model_copy(
        update={"worker": None}
    )


def test_render_yaml_is_a_stream_of_valid_workflows(worker: Worker) -> None:
    worker.register_workflow(WorkflowJob(name="a", steps=[Fn(hello)]))
    worker.register_workflow(WorkflowJob(name="b", steps=[Fn(hello)]))
    documents = list(yaml.safe_load_all(render_yaml(worker)))
    assert [d["metadata"]["name"] for d in documents] == ["a", "b"]
    for document in documents:
        Workflow.model_validate(document)


def test_rendering_a_broken_worker_raises_every_problem(worker: Worker) -> None:
    worker.register_workflow(WorkflowJob(name="a", steps=[Fn(hello).add_parents("x", "y")]))
    with pytest.raises(RegistrationError) as caught:
        render_yaml(worker)
    assert len(caught.value.problems) == 2


def test_load_worker(project: Path) -> None:
    write(project, "app", GOOD)
    worker = load_worker("app:worker")
    assert worker.name == "demo"
    assert load_worker("app") is worker  # the attribute defaults to "worker"
    assert load_worker("app:Holder.worker") is worker


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (":worker", "names no module"),
        ("missing_module:worker", "cannot import 'missing_module'"),
        ("app:nothing", "has no attribute 'nothing'"),
        ("app:hello", "is a function, not a Worker"),
    ],
)
def test_load_worker_errors(project: Path, reference: str, message: str) -> None:
    write(project, "app", GOOD)
    with pytest.raises(WorkerLoadError, match=message):
        load_worker(reference)


def test_import_errors_inside_the_module_propagate(project: Path) -> None:
    write(project, "broken", "import not_installed_anywhere\n")
    with pytest.raises(ModuleNotFoundError, match="not_installed_anywhere"):
        load_worker("broken:worker")


def test_cli_render_yaml(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "app", GOOD)
    assert main(["render", "app:worker"]) == 0
    (document,) = yaml.safe_load_all(capsys.readouterr().out)
    assert document["spec"]["worker"] == "app:worker"
    assert document["spec"]["steps"][0]["action"] == "hello:hello"
    assert document["spec"]["image"] == "demo:1"


def test_cli_render_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "app", GOOD)
    assert main(["render", "app:worker", "-o", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["kind"] == "List"
    assert [item["metadata"]["name"] for item in document["items"]] == ["hello"]


def test_cli_reports_all_problems_with_their_lines(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(project, "bad", BAD)
    assert main(["render", "bad:worker"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kubehatch render: 5 registration problems:")
    assert "bad.py:4: workflow 'a', step 'two': two(ctx, extra) cannot be called" in err
    assert "bad.py:8: workflow 'a', on (crons): 'nope' is not a cron schedule" in err
    assert "bad.py:9: workflow 'a', step 'two', parents[0]: parent 'ghost'" in err
    assert "the name is already taken by the workflow at bad.py:8" in err


def test_cli_reports_load_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "nowhere:worker"]) == 1
    assert "cannot import 'nowhere'" in capsys.readouterr().err


def test_subcommands_are_discovered_from_modules() -> None:
    names = [module.NAME for module in subcommands()]
    assert "render" in names
    for module in subcommands():
        assert module.HELP and callable(module.configure) and callable(module.run)
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_python_dash_m_entry_point(project: Path) -> None:
    import subprocess

    write(project, "app", GOOD)
    result = subprocess.run(
        [sys.executable, "-m", "kubehatch.cli", "render", "app:worker"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "kind: Workflow" in result.stdout


def test_cli_render_with_another_image(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "app", GOOD)
    assert main(["render", "app:worker", "--image", "localhost/kubehatch/step:1"]) == 0
    (document,) = yaml.safe_load_all(capsys.readouterr().out)
    assert document["spec"]["image"] == "localhost/kubehatch/step:1"
    assert document["spec"]["worker"] == "app:worker"
