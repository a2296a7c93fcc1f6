"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    step_service_account: str = "kubehatch-step"
    """ServiceAccount of step pods when the Workflow names none: it may only create ConfigMaps."""

    step_grace_seconds: int = 5
    """terminationGracePeriodSeconds of step pods: the time a step has after SIGTERM."""

    step_run_as_user: int = 65532
    """UID of step containers; the restricted Pod Security Standard forbids root."""

    api_workers: int = 32
    """Threads for (blocking) Kubernetes API calls, and the HTTP connection pool size."""

    metrics_port: int = 0
    """Port of the Prometheus metrics endpoint; 0 serves none."""

    post_events: bool = True
    """Post a Kubernetes Event on the run for every step transition (one API write each)."""

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            step_service_account=env.get(
                "KUBEHATCH_STEP_SERVICE_ACCOUNT", cls.step_service_account
            ),
            step_grace_seconds=int(env.get("KUBEHATCH_STEP_GRACE_SECONDS", cls.step_grace_seconds)),
            step_run_as_user=int(env.get("KUBEHATCH_STEP_RUN_AS_USER", cls.step_run_as_user)),
            api_workers=int(env.get("KUBEHATCH_API_WORKERS", cls.api_workers)),
            metrics_port=int(env.get("KUBEHATCH_METRICS_PORT", cls.metrics_port)),
            post_events=env.get("KUBEHATCH_POST_EVENTS", "true").lower() != "false",
        )
