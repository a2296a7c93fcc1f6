"""The step pod's environment: one step attempt, as the operator describes it to its pod.

Both sides of the pod boundary use :class:`StepEnv` (the operator calls :meth:`StepEnv.to_env`,
the pod :meth:`StepEnv.from_env`), so a variable cannot be written under one name and read
under another. Part of the wire contract (:mod:`kubehatch.api.wire`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

from kubehatch.api import wire
from kubehatch.api.wire import ENV_WORKER, INPUT_DIR, LABEL_ITEM, PARENTS_DIR, step_labels
from kubehatch.errors import KubehatchError


class StepEnvError(KubehatchError):
    """The pod's environment does not describe a step attempt."""


@dataclass(frozen=True)
class StepEnv:
    """One step attempt, as the operator describes it to the step pod's environment.

    The operator builds it and calls :meth:`to_env`; the pod calls :meth:`from_env`.
    """

    namespace: str
    workflow: str
    run: str
    run_uid: str
    step: str
    action: str
    attempt: int
    parents: tuple[str, ...]
    output_configmap: str
    worker: str | None = None
    timeout_seconds: int | None = None
    """The step's timeout: the pod stops its code after this long (exit EXIT_TIMED_OUT)."""
    failures: str | None = None
    """For an on-failure step: the failed steps' messages, as a JSON object by step name."""
    additional_metadata: str | None = None
    """The run's spec.additionalMetadata, a JSON object (``ctx.additional_metadata``)."""
    item: int | None = None
    """For one item of a forEach step: its index in the list."""
    item_value: str | None = None
    """For one item of a forEach step: the item, as JSON."""
    input_dir: PurePosixPath = INPUT_DIR
    parents_dir: PurePosixPath = PARENTS_DIR

    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("namespace", "KUBEHATCH_NAMESPACE"),
        ("workflow", "KUBEHATCH_WORKFLOW"),
        ("run", "KUBEHATCH_RUN"),
        ("run_uid", "KUBEHATCH_RUN_UID"),
        ("step", "KUBEHATCH_STEP"),
        ("action", "KUBEHATCH_ACTION"),
        ("attempt", "KUBEHATCH_ATTEMPT"),
        ("parents", "KUBEHATCH_PARENTS"),
        ("output_configmap", "KUBEHATCH_OUTPUT_CONFIGMAP"),
        ("input_dir", "KUBEHATCH_INPUT_DIR"),
        ("parents_dir", "KUBEHATCH_PARENTS_DIR"),
        ("worker", ENV_WORKER),
        ("timeout_seconds", "KUBEHATCH_TIMEOUT_SECONDS"),
        ("failures", "KUBEHATCH_FAILURES"),
        ("additional_metadata", "KUBEHATCH_ADDITIONAL_METADATA"),
        ("item", "KUBEHATCH_ITEM_INDEX"),
        ("item_value", "KUBEHATCH_ITEM"),
    )
    REQUIRED: ClassVar[tuple[str, ...]] = (
        "KUBEHATCH_RUN",
        "KUBEHATCH_STEP",
        "KUBEHATCH_ACTION",
        ENV_WORKER,
    )

    def to_env(self) -> dict[str, str]:
        """The variables, by name (``worker`` is left out when unset: the image's counts)."""
        env: dict[str, str] = {}
        for attr, name in self._FIELDS:
            value = getattr(self, attr)
            if value is None:
                continue
            env[name] = ",".join(value) if attr == "parents" else str(value)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StepEnv:
        """Read the variables back; raises StepEnvError naming what is missing and why."""
        missing = [name for name in cls.REQUIRED if not env.get(name)]
        if missing:
            hint = (
                f" {ENV_WORKER} names the worker in the image ('module:attribute'); "
                "`kubehatch image build` sets it."
                if ENV_WORKER in missing
                else " `kubehatch step` runs inside step pods that the operator creates."
            )
            raise StepEnvError(f"missing environment variables: {', '.join(missing)}.{hint}")
        names = dict(cls._FIELDS)
        try:
            attempt = int(env.get(names["attempt"], "1"))
            timeout = env.get(names["timeout_seconds"])
            timeout_seconds = int(timeout) if timeout else None
            index = env.get(names["item"])
            item = int(index) if index else None
        except ValueError as err:
            raise StepEnvError(
                f"{names['attempt']} and {names['timeout_seconds']} must be integers: {err}"
            ) from err
        return cls(
            namespace=env.get(names["namespace"], "default"),
            workflow=env.get(names["workflow"], ""),
            run=env[names["run"]],
            run_uid=env.get(names["run_uid"], ""),
            step=env[names["step"]],
            action=env[names["action"]],
            attempt=attempt,
            parents=tuple(p for p in env.get(names["parents"], "").split(",") if p),
            output_configmap=env.get(names["output_configmap"], ""),
            worker=env[names["worker"]],
            timeout_seconds=timeout_seconds,
            failures=env.get(names["failures"]) or None,
            additional_metadata=env.get(names["additional_metadata"]) or None,
            item=item,
            item_value=env.get(names["item_value"]),
            input_dir=PurePosixPath(env.get(names["input_dir"], str(INPUT_DIR))),
            parents_dir=PurePosixPath(env.get(names["parents_dir"], str(PARENTS_DIR))),
        )

    @property
    def labels(self) -> dict[str, str]:
        """The labels of everything made for this attempt (Job, pod, output)."""
        labels = step_labels(self.workflow, self.run, self.step, self.attempt)
        if self.item is not None:
            labels[LABEL_ITEM] = str(self.item)
        return labels


def output_configmap(step: StepEnv, output_json: str) -> dict[str, Any]:
    """A step attempt's small output (the step pod creates it; owned by the run, not
    controlled). Every output's ConfigMaps come from :func:`kubehatch.api.outputs.configmaps`,
    which gives this one for an output of up to 256 KiB of JSON."""
    return wire.configmap(
        step.output_configmap,
        step.namespace,
        step.labels,
        wire.owner_reference("WorkflowRun", step.run, step.run_uid, controller=False),
        wire.OUTPUT_KEY,
        output_json,
    )
