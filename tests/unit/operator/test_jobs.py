"""The step Job manifest: names, hand-over of inputs, limits, and the restricted profile."""

from __future__ import annotations

from typing import Any

from kubehatch.api import stepenv, wire
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


def build(
    step: int, parents: dict[str, str], attempt: int = 1, parts: dict[str, int] | None = None
) -> dict:
    start = StartAttempt(
        SPEC.steps[step],
        attempt,
        wire.job_name("run", "uid-1", SPEC.steps[step].name, attempt),
        parents,
    )
    return step_job(
        namespace="ns",
        workflow="wf",
        run="run",
        run_uid="uid-1",
        spec=SPEC,
        start=start,
        settings=StepSettings(),
        output_parts=parts,
    )


def test_job_is_owned_by_the_run_and_never_retries_by_itself() -> None:
    job = build(0, {})
    assert job["metadata"]["name"] == wire.job_name("run", "uid-1", "a", 1)
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "WorkflowRun",
        "run",
        "uid-1",
        True,
    )
    assert job["spec"]["backoffLimit"] == 0
    assert "activeDeadlineSeconds" not in job["spec"]
    # Evictions, drains and preemptions are not the step's failure: the Job makes a new pod.
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules == [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["kubehatch.dev/step"] == "a" and labels["kubehatch.dev/attempt"] == "1"


def test_step_settings_reach_the_container() -> None:
    job = build(1, {"a": "run-a-1-output"}, attempt=2, parts={"run-a-1-output": 0})
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    # The timeout counts the step's code, in its pod; the Job's deadline is only a
    # backstop past start-up (10m), the timeout (90s) and twice the grace period.
    assert env["KUBEHATCH_TIMEOUT_SECONDS"] == "90"
    assert job["spec"]["activeDeadlineSeconds"] == 600 + 90 + 2 * 5
    assert env["KUBEHATCH_ACTION"] == "other:b"
    assert "KUBEHATCH_WORKER" not in env  # the image's own KUBEHATCH_WORKER applies
    assert env["KUBEHATCH_ATTEMPT"] == "2"
    assert env["KUBEHATCH_OUTPUT_CONFIGMAP"] == wire.output_configmap_name(
        wire.job_name("run", "uid-1", "b", 2)
    )
    assert env["FOO"] == "bar"
    assert container["resources"]["limits"] == {"memory": "64Mi"}
    parents = next(v for v in pod["volumes"] if v["name"] == "parents")
    assert parents["projected"]["sources"] == [
        {
            "configMap": {
                "name": "run-a-1-output",
                "items": [
                    {"key": "output.json", "path": "a.json"},
                    {"key": "output.json.gz", "path": "a.json.gz"},
                    {"key": "output.parts.json", "path": "a.parts.json"},
                ],
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
    a, b = wire.job_name(run, "u", "step-one", 1), wire.job_name(run, "u", "step-two", 1)
    assert len(a) <= wire.MAX_JOB_NAME and len(b) <= wire.MAX_JOB_NAME and a != b
    assert wire.job_name(run, "u", "step-one", 1) == a


def test_names_that_join_alike_or_outlive_their_run_cannot_collide() -> None:
    """run 'etl-x7k2p' step 'load-data' and run 'etl-x7k2p-load' step 'data' used to share
    a Job; a run deleted and re-created under its name used to meet its predecessor's."""
    assert wire.job_name("etl-x7k2p", "u1", "load-data", 1) != wire.job_name(
        "etl-x7k2p-load", "u2", "data", 1
    )
    assert wire.job_name("etl", "old-uid", "a", 1) != wire.job_name("etl", "new-uid", "a", 1)
    assert wire.input_configmap_name("etl", "old-uid") != wire.input_configmap_name("etl", "new")
    job = wire.job_name("etl", "u1", "a", 1)
    assert wire.output_configmap_name(job) == f"{job}-output"


def test_a_pod_name_tells_its_job_so_an_admission_policy_can_check_outputs() -> None:
    """The Job controller names pods <job>-<5 chars> while the Job's name is <= 57."""
    job = wire.job_name("r" * 200, "u", "s" * 63, 100)
    assert len(job) <= 57
    pod = f"{job}-x7k2p"
    assert wire.output_configmap_name(pod[: len(pod) - 6]) == wire.output_configmap_name(job)


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
    """Both sides of the pod boundary go through StepEnv: nothing is lost between them."""
    spec = SPEC.model_copy(update={"worker": "myapp.workers:worker"})
    job_name = wire.job_name("run", "u-1", "b", 2)
    start = StartAttempt(spec.steps[1], 2, job_name, {"a": "run-a-1-output"})
    job = step_job(namespace="ns", workflow="wf", run="run", run_uid="u-1", spec=spec,
                   start=start, settings=StepSettings())  # fmt: skip
    pod = job["spec"]["template"]
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    step = stepenv.StepEnv.from_env(env)
    assert step == stepenv.StepEnv(
        namespace="ns", workflow="wf", run="run", run_uid="u-1", step="b", action="other:b",
        attempt=2, parents=("a",), output_configmap=wire.output_configmap_name(job_name),
        worker="myapp.workers:worker", timeout_seconds=90,
    )  # fmt: skip
    # The output the pod creates carries the labels of the Job that made it.
    output = stepenv.output_configmap(step, "{}")
    assert output["metadata"]["labels"] == pod["metadata"]["labels"] == job["metadata"]["labels"]
    mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert (mounts["input"], mounts["parents"]) == (str(step.input_dir), str(step.parents_dir))


def test_a_small_input_travels_in_the_pods_annotation_and_a_large_one_in_a_configmap() -> None:
    """The same file either way, so every step image reads it as it always has."""
    start = StartAttempt(SPEC.steps[0], 1, wire.job_name("run", "u-1", "a", 1), {})

    def pod(input_json: str | None) -> dict[str, Any]:
        job = step_job(namespace="ns", workflow="wf", run="run", run_uid="u-1", spec=SPEC,
                       start=start, settings=StepSettings(), input_json=input_json)  # fmt: skip
        return dict(job["spec"]["template"])

    text = '{"cmd":"echo $(HOME) $$"}'  # no expansion: a file, not an environment value
    inline, mounted = pod(text), pod(None)
    assert inline["metadata"]["annotations"] == {wire.ANNOTATION_INPUT: text}
    source = {v["name"]: v for v in inline["spec"]["volumes"]}["input"]["downwardAPI"]
    assert source["items"] == [
        {"path": wire.INPUT_KEY,
         "fieldRef": {"fieldPath": f"metadata.annotations['{wire.ANNOTATION_INPUT}']"}}
    ]  # fmt: skip
    volumes = {v["name"]: v for v in mounted["spec"]["volumes"]}
    assert volumes["input"]["configMap"]["name"] == wire.input_configmap_name("run", "u-1")
    assert "annotations" not in mounted["metadata"]
    mounts = {m["name"]: m["mountPath"] for m in inline["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["input"] == str(wire.INPUT_DIR)


def test_user_data_in_the_environment_escapes_the_kubelets_variable_expansion() -> None:
    step = SPEC.steps[0]
    start = StartAttempt(step, 1, wire.job_name("run", "u-1", "a", 1), {}, item=0,
                         item_value='"$(KUBEHATCH_RUN) costs $5"')  # fmt: skip
    job = step_job(namespace="ns", workflow="wf", run="run", run_uid="u-1", spec=SPEC,
                   start=start, settings=StepSettings())  # fmt: skip
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    # The kubelet turns `$$` into `$` and expands nothing else: the pod reads the item back.
    assert env["KUBEHATCH_ITEM"] == '"$$(KUBEHATCH_RUN) costs $$5"'


def test_step_pods_land_where_the_settings_place_them() -> None:
    start = StartAttempt(SPEC.steps[0], 1, wire.job_name("run", "uid-1", "a", 1), {})
    toleration = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
    placed = StepSettings(node_selector={"type": "kwok"}, tolerations=(toleration,))
    job = step_job(
        namespace="ns", workflow="wf", run="run", run_uid="uid-1", spec=SPEC, start=start,
        settings=placed,
    )  # fmt: skip
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"type": "kwok"}
    assert pod["tolerations"] == [toleration]
    assert "nodeSelector" not in build(0, {})["spec"]["template"]["spec"]


def test_a_runs_priority_picks_its_step_pods_priority_class() -> None:
    start = StartAttempt(SPEC.steps[0], 1, wire.job_name("run", "uid-1", "a", 1), {})
    classes = StepSettings(priority_classes={3: "urgent"})

    def pod(priority: int) -> dict:
        job = step_job(
            namespace="ns", workflow="wf", run="run", run_uid="uid-1", spec=SPEC, start=start,
            settings=classes, priority=priority,
        )  # fmt: skip
        return job["spec"]["template"]["spec"]

    assert pod(3)["priorityClassName"] == "urgent"
    assert "priorityClassName" not in pod(1)


def test_with_a_kueue_queue_step_jobs_wait_suspended_for_kueue() -> None:
    start = StartAttempt(SPEC.steps[0], 1, wire.job_name("run", "uid-1", "a", 1), {})
    queued = StepSettings(kueue_queue="team-a")
    job = step_job(
        namespace="ns", workflow="wf", run="run", run_uid="uid-1", spec=SPEC, start=start,
        settings=queued,
    )  # fmt: skip
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    # The pod's labels (which its output ConfigMap copies) stay kubehatch's own.
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]
    assert "suspend" not in build(0, {})["spec"]
