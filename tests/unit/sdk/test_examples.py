"""Every guide example: its YAML is what it renders, and it runs."""

import importlib
from typing import Any

import pytest
import yaml

from examples.regenerate import example_names, main, rendered, yaml_path
from kubehatch.api import Workflow
from kubehatch.testing import concurrency_key, run_workflow

EXPECTED_EXAMPLES = [
    "ex01_simple_workflow",
    "ex02_single_step_fn",
    "ex03_two_step",
    "ex04_service_timeout",
    "ex05_concurrency_limit",
    "ex06_per_user_concurrency",
    "ex07_cron",
    "ex08_middleware",
    "ex09_reused_action",
    "ex10_round_robin",
    "ex11_debounce",
    "ex12_priority",
    "ex13_control_flow",
    "ex14_fan_out",
    "ex15_waits",
    "ex16_child_runs",
    "ex20_filters_and_time_zones",
    "ex21_worker_pool",
]


def test_every_guide_example_is_there() -> None:
    assert example_names() == EXPECTED_EXAMPLES


@pytest.mark.parametrize("name", EXPECTED_EXAMPLES)
def test_checked_in_yaml_matches_the_rendering(name: str) -> None:
    path = yaml_path(name)
    assert path.is_file() and path.read_text() == rendered(name), (
        f"{path} is stale; run: python -m examples.regenerate"
    )
    for document in yaml.safe_load_all(path.read_text()):
        Workflow.model_validate(document)


def test_regenerate_check_mode_passes() -> None:
    assert main(["--check"]) == 0


def worker_of(name: str) -> Any:
    return importlib.import_module(f"examples.{name}").worker


@pytest.mark.parametrize(
    ("example", "workflow", "run_input", "outputs"),
    [
        (
            "ex01_simple_workflow",
            "simple-workflow",
            {"username": "ada"},
            {"greet": {"greeting": "Welcome, ada!"}},
        ),
        ("ex02_single_step_fn", "post-user-create", None, {"post-user-create": None}),
        ("ex02_single_step_fn", "ex02-single-step-fn-lambda", None, {"lambda": {"run": "local"}}),
        (
            "ex03_two_step",
            "two-step-workflow",
            {"username": "ada"},
            {
                "step-one": {"message": "Username is: ada"},
                "step-two": {"message": "Above message is: Username is: ada"},
            },
        ),
        (
            "ex04_service_timeout",
            "post-user-sign-up",
            None,
            {"post-sign-up": {"status": "signed up (post-sign-up)"}},
        ),
        ("ex05_concurrency_limit", "concurrency-limit", None, {"work": {"done": True}}),
        (
            "ex06_per_user_concurrency",
            "concurrency-limit-per-user",
            {"user_id": "u1"},
            {"sync-user": {"synced": "u1"}},
        ),
        ("ex08_middleware", "middleware-workflow", None, {"read-value": {"testkey": "testvalue"}}),
        (
            "ex09_reused_action",
            "audited-action-workflow",
            {"email": "ada@example.com"},
            {
                "step-one": {"sent_to": "ada@example.com"},
                "audit": {"audited": {"sent_to": "ada@example.com"}},
            },
        ),
    ],
)
def test_examples_run(example: str, workflow: str, run_input: Any, outputs: Any) -> None:
    assert run_workflow(worker_of(example), workflow, run_input).outputs == outputs


def test_cron_example_runs_on_its_schedule() -> None:
    worker = worker_of("ex07_cron")
    spec = worker.workflow("my-cron-job").spec
    assert spec.triggers.crons == ["*/5 * * * *"] and spec.timeout == "60s"
    assert "triggered_at" in run_workflow(worker, "my-cron-job").outputs["report-time"]


def test_concurrency_examples_compute_their_keys() -> None:
    assert concurrency_key(worker_of("ex05_concurrency_limit"), "concurrency-limit") == "my-key"
    per_user = worker_of("ex06_per_user_concurrency")
    for workflow in ("concurrency-limit-per-user", "concurrency-limit-per-user-cel"):
        assert concurrency_key(per_user, workflow, {"user_id": "u7"}) == "u7"


def test_middleware_example_wraps_errors() -> None:
    from examples.ex08_middleware import StepFailed, add_test_value
    from kubehatch import Context

    def failing(ctx: Context) -> None:
        raise ValueError("boom")

    with pytest.raises(StepFailed, match="error in middleware: boom"):
        add_test_value(Context(), failing)


def test_queue_examples() -> None:
    from kubehatch.api.cel import concurrency_limit

    tenants = worker_of("ex10_round_robin")
    job = {"tenant": "acme", "job_id": 1}
    assert concurrency_key(tenants, "tenant-round-robin", job) == "acme"
    limit = tenants.workflow("tenant-round-robin").spec.concurrency
    assert limit is not None and (limit.max_runs, limit.max_runs_total) == (1, 2)
    assert run_workflow(tenants, "tenant-round-robin", job).outputs == {
        "process": {"tenant": "acme", "processed": 1}
    }
    debounce = worker_of("ex11_debounce")
    for workflow in ("reindex-document", "reindex-document-oldest"):
        assert concurrency_key(debounce, workflow, {"document_id": "doc-7"}) == "doc-7"
        assert run_workflow(debounce, workflow, {"document_id": "doc-7"}).outputs == {
            "reindex": {"reindexed": "doc-7"}
        }
    spec = worker_of("ex12_priority").workflow("generate-report").spec
    assert spec is not None and spec.concurrency is not None
    assert spec.default_priority == 2 and spec.concurrency.queue_timeout == "10m"
    expression = spec.concurrency.max_runs_expression
    assert expression is not None
    assert concurrency_limit(expression, {"customer": "a", "tier": "premium"}) == 3
    assert concurrency_limit(expression, {"customer": "b", "tier": "free"}) == 1
