"""Deterministic names and labels for everything the operator creates.

A name is a pure function of the run and the step attempt, so creating an object twice
is a 409 Conflict, never a duplicate: this is what makes reconciling idempotent and the
operator safe to kill at any moment.
"""

from __future__ import annotations

from kubehatch.api.common import bounded, label_value

GROUP = "kubehatch.dev"
LABEL_RUN = f"{GROUP}/run"
LABEL_STEP = f"{GROUP}/step"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_WORKFLOW = f"{GROUP}/workflow"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubehatch"

# The pseudo-step that runs a concurrency key action. The dot keeps it apart from every
# real step name (DNS labels have none), in Job names and labels alike.
KEY_STEP = "concurrency.key"

# Job names end up in the `job-name` pod label, which is limited to 63 characters.
MAX_JOB_NAME = 63
MAX_OBJECT_NAME = 253


def job_name(run: str, step: str, attempt: int) -> str:
    return bounded(f"{run}-{step}-{attempt}", MAX_JOB_NAME)


def input_configmap(run: str) -> str:
    return bounded(f"{run}-input", MAX_OBJECT_NAME)


def output_configmap(run: str, step: str, attempt: int) -> str:
    """Each attempt writes its own output, so a retried step never needs to overwrite one."""
    return bounded(f"{run}-{step}-{attempt}-output", MAX_OBJECT_NAME)


def step_labels(workflow: str, run: str, step: str, attempt: int) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_WORKFLOW: label_value(workflow),
        LABEL_RUN: label_value(run),
        LABEL_STEP: label_value(step),
        LABEL_ATTEMPT: str(attempt),
    }
