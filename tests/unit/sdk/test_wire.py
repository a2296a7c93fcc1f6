"""The wire contract: one spelling of every name that crosses a process boundary."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubehatch.api import stepenv, wire
from kubehatch.api.workflowrun import TriggeredBy, TriggerType, WorkflowRun
from kubehatch.cli.trigger import run_manifest

ROOT = Path(__file__).resolve().parents[3]

STEP = stepenv.StepEnv(
    namespace="ns",
    workflow="wf",
    run="wf-x7k2p",
    run_uid="0b6f",
    step="load",
    action="wf:load",
    attempt=3,
    parents=("extract", "clean"),
    output_configmap="wf-x7k2p-load-3-output",
    worker="app.workers:worker",
)


def test_step_env_round_trips() -> None:
    env = STEP.to_env()
    assert all(name.startswith(wire.ENV_PREFIX) for name in env)
    assert env["KUBEHATCH_PARENTS"] == "extract,clean"
    assert stepenv.StepEnv.from_env(env) == STEP


def test_step_env_without_a_worker_leaves_the_images_own() -> None:
    env = STEP.__class__(**{**STEP.__dict__, "worker": None}).to_env()
    assert wire.ENV_WORKER not in env


@pytest.mark.parametrize("missing", ["KUBEHATCH_RUN", "KUBEHATCH_STEP", "KUBEHATCH_WORKER"])
def test_missing_variables_are_named(missing: str) -> None:
    env = {k: v for k, v in STEP.to_env().items() if k != missing}
    with pytest.raises(stepenv.StepEnvError, match=missing):
        stepenv.StepEnv.from_env(env)


def test_a_bad_attempt_number_is_an_error_not_a_crash() -> None:
    with pytest.raises(stepenv.StepEnvError, match="KUBEHATCH_ATTEMPT"):
        stepenv.StepEnv.from_env({**STEP.to_env(), "KUBEHATCH_ATTEMPT": "two"})


def test_input_and_output_configmaps_share_the_runs_labels() -> None:
    made = wire.input_configmap(
        namespace="ns", workflow="wf", run="wf-x7k2p", run_uid="0b6f", input_json="{}"
    )
    output = stepenv.output_configmap(STEP, "{}")
    assert made["metadata"]["labels"].items() <= output["metadata"]["labels"].items()
    assert made["data"] == {wire.INPUT_KEY: "{}"} and output["data"] == {wire.OUTPUT_KEY: "{}"}
    # The step account may not set finalizers, so the pod's owner reference must not block.
    assert "blockOwnerDeletion" not in output["metadata"]["ownerReferences"][0]
    assert made["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
    assert wire.run_owner(output) == wire.run_owner(made) == ("wf-x7k2p", "0b6f")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01T00:00:00Z", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T00:00:00z", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T01:00:00+01:00", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T00:00:00", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_times_parse_as_the_api_server_writes_them(text: str, expected: datetime | None) -> None:
    assert wire.parse_time(text) == expected


def test_times_format_as_kubernetes_writes_them() -> None:
    assert wire.format_time(datetime(2030, 1, 1, 12, tzinfo=UTC)) == "2030-01-01T12:00:00Z"


def test_every_run_is_made_by_one_builder() -> None:
    scheduled = datetime(2026, 11, 24, 22, 40, tzinfo=UTC)
    cron = run_manifest(
        namespace="ns", workflow="nightly", schedule="40 22 * * *", prefix="p", scheduled=scheduled
    )
    direct = WorkflowRun.of(
        "nightly",
        name="p-20261124-2240",
        namespace="ns",
        triggered_by=TriggeredBy(
            type=TriggerType.CRON, source="40 22 * * * at 2026-11-24T22:40:00Z"
        ),
        scheduled_at=scheduled,
        labels={wire.LABEL_TRIGGER_TYPE: "cron"},
        annotations={wire.ANNOTATION_TRIGGER: "cron:40 22 * * *"},
    ).to_manifest()
    assert cron == direct
    assert cron["metadata"]["labels"][wire.LABEL_WORKFLOW] == "nightly"
    assert cron["spec"]["scheduledAt"] == "2026-11-24T22:40:00Z"
    unnamed = WorkflowRun.of("nightly").to_manifest()
    assert unnamed["metadata"]["generateName"] == "nightly-"


def _string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_module_spells_the_contract_again() -> None:
    """Group, version, labels and the pods' variables appear as literals in the wire
    contract only: wire.py and the step pod's environment, stepenv.py."""
    pod_variables = {*STEP.to_env(), wire.ENV_JOB_NAME}
    offenders = []
    for path in [*ROOT.glob("sdk/kubehatch/**/*.py"), *ROOT.glob("operator/**/*.py")]:
        if path.name in ("wire.py", "stepenv.py") or "imagebuild" in path.parts:
            continue
        for text in _string_constants(path):
            if text.startswith(f"{wire.GROUP}/") or text in {*pod_variables, wire.GROUP}:
                offenders.append(f"{path.relative_to(ROOT)}: {text!r}")
    assert offenders == []
