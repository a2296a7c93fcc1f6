"""The step Job manifest: names, hand-over of inputs, limits, and the restricted profile."""

from __future__ import annotations

from kubehatch.api import wire
from kubehatch.api.workflow import WorkflowSpec
from kubehatch_operator.jobs import step_job
from kubehatch_operator.model import StartAttempt
from kubehatch_operator.settings import StepSettings

SPEC = WorkflowSpec.model_validate(
    {
        "image": "img:1",
        "service": "user",
        "steps": [
            {"name": "a", "action": "a"},
            {
                "name": "b",
                "action": "other:b",
                "parents": ["a"],
                "timeout": "1m30s",
                "env": [{"name": "FOO", "value": "bar"}],
                "resources": {"limits": {"memory": "64Mi"}},
            },
        ],
    }
)


def build(step: int, parents: dict[str, str], attempt: int = 1) -> dict:
    start = StartAttempt(
        SPEC.steps[step], attempt, wire.job_name("run", SPEC.steps[step].name, attempt), parents
    )
    return step_job(
        namespace="ns",
        workflow="wf",
        run="run",
        run_uid="uid-1",
        spec=SPEC,
        start=start,
        settings=StepSettings(),
    )


def test_job_is_owned_by_the_run_and_never_retries_by_itself() -> None:
    job = build(0, {})
    assert job["metadata"]["name"] == "run-a-1"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "WorkflowRun",
        "run",
        "uid-1",
        True,
    )
    assert job["spec"]["backoffLimit"] == 0
    assert "activeDeadlineSeconds" not in job["spec"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["kubehatch.dev/step"] == "a" and labels["kubehatch.dev/attempt"] == "1"


def test_step_settings_reach_the_container() -> None:
    job = build(1, {"a": "run-a-1-output"}, attempt=2)
    assert job["spec"]["activeDeadlineSeconds"] == 90
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KUBEHATCH_ACTION"] == "other:b"
    assert "KUBEHATCH_WORKER" not in env  # the image's own KUBEHATCH_WORKER applies
    assert env["KUBEHATCH_ATTEMPT"] == "2"
    assert env["KUBEHATCH_OUTPUT_CONFIGMAP"] == "run-b-2-output"
    assert env["FOO"] == "bar"
    assert container["resources"]["limits"] == {"memory": "64Mi"}
    parents = next(v for v in pod["volumes"] if v["name"] == "parents")
    assert parents["projected"]["sources"] == [
        {
            "configMap": {
                "name": "run-a-1-output",
                "items": [{"key": "output.json", "path": "a.json"}],
                "optional": True,
            }
        }
    ]


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = build(0, {})["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {v["name"] for v in pod["volumes"]} <= {"input", "tmp", "parents"}
    assert pod["serviceAccountName"] == "kubehatch-step"


def test_long_names_stay_within_limits_and_distinct() -> None:
    run = "r" * 80
    a, b = wire.job_name(run, "step-one", 1), wire.job_name(run, "step-two", 1)
    assert len(a) <= 63 and len(b) <= 63 and a != b
    assert wire.job_name(run, "step-one", 1) == a


def test_the_workflow_names_the_worker_the_pod_imports() -> None:
    spec = SPEC.model_copy(update={"worker": "myapp.workers:worker"})
    start = StartAttempt(spec.steps[0], 1, "run-a-1", {})
    job = step_job(namespace="ns", workflow="wf", run="run", run_uid="u", spec=spec, start=start,
                   settings=StepSettings())  # fmt: skip
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBEHATCH_WORKER"] == "myapp.workers:worker"


def test_label_values_for_long_names_are_valid_and_shared_with_the_sdk() -> None:
    from kubehatch.api.wire import label_value

    run = "workflow-with-a-rather-long-name-at-20261124-230000-and-more"
    value = wire.step_labels("wf", run + "-x" * 5, "a", 1)[wire.LABEL_RUN]
    assert len(value) <= 63 and value[-1].isalnum()
    assert value == label_value(run + "-x" * 5)


def test_the_step_pod_reads_back_exactly_what_the_job_says() -> None:
    """Both sides of the pod boundary go through wire.StepEnv: nothing is lost between them."""
    spec = SPEC.model_copy(update={"worker": "myapp.workers:worker"})
    start = StartAttempt(spec.steps[1], 2, wire.job_name("run", "b", 2), {"a": "run-a-1-output"})
    job = step_job(namespace="ns", workflow="wf", run="run", run_uid="u-1", spec=spec,
                   start=start, settings=StepSettings())  # fmt: skip
    pod = job["spec"]["template"]
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    step = wire.StepEnv.from_env(env)
    assert step == wire.StepEnv(
        namespace="ns", workflow="wf", run="run", run_uid="u-1", step="b", action="other:b",
        attempt=2, parents=("a",), output_configmap=wire.output_configmap_name("run", "b", 2),
        worker="myapp.workers:worker",
    )  # fmt: skip
    # The output the pod creates carries the labels of the Job that made it.
    output = wire.output_configmap(step, "{}")
    assert output["metadata"]["labels"] == pod["metadata"]["labels"] == job["metadata"]["labels"]
    mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert (mounts["input"], mounts["parents"]) == (str(step.input_dir), str(step.parents_dir))
