"""The pod floor: what a bare Job costs on this cluster, with no engine in between.

A Job running `python3 -c pass` in the python-base image, one at a time on an idle node:
creation to its container running, to its container stopped, and to the Job's Complete
condition. Engines are judged by what they add above this.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client, watch

from tests.bench.common import summary_ms
from tests.bench.podclock import PodClock

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def bare_job(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"bench": "floor"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", "pass"],
                            "securityContext": RESTRICTED_CONTAINER,
                        }
                    ],
                },
            },
        },
    }


def measure(namespace: str, image: str, tries: int) -> dict[str, Any]:
    pods = PodClock(namespace)
    pods.start_watching()
    complete: dict[str, float] = {}
    done = threading.Event()

    def follow_jobs() -> None:
        w = watch.Watch()
        for event in w.stream(
            client.BatchV1Api().list_namespaced_job, namespace, timeout_seconds=900
        ):
            job = event["object"]
            if any(
                c.type == "Complete" and c.status == "True" for c in job.status.conditions or []
            ):
                complete.setdefault(job.metadata.name, time.monotonic())
            if done.is_set():
                w.stop()

    threading.Thread(target=follow_jobs, daemon=True).start()
    time.sleep(0.5)
    created: dict[str, float] = {}
    batch = client.BatchV1Api()
    for i in range(tries):
        name = f"floor-{i}"
        created[name] = time.monotonic()
        batch.create_namespaced_job(namespace, bare_job(name, image))
        deadline = time.monotonic() + 120
        while name not in complete and time.monotonic() < deadline:
            time.sleep(0.05)
    done.set()
    pods.stop()
    to_running, to_exit = [], []
    for pod in pods.pods.values():
        job = pod.labels.get("job-name", "")
        if job in created and "main" in pod.terminated:
            to_running.append(pod.running["main"] - created[job])
            to_exit.append(pod.terminated["main"] - created[job])
    to_complete = [complete[j] - created[j] for j in created if j in complete]
    return {
        "tries": tries,
        "created_to_running_ms": summary_ms(to_running),
        "created_to_container_exit_ms": summary_ms(to_exit),
        "created_to_job_complete_ms": summary_ms(to_complete),
    }
