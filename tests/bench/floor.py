"""The pod floor: what a bare Job costs on this cluster, with no engine in between.

A Job running `python3 -c pass` in the python-base image, one at a time on an idle node:
creation to its container running, to its container stopped, and to the Job's Complete
condition. Engines are judged by what they add above this.

The loaded floor (`measure_chains`): the 20-chain phase's work with no engine at all, so
that the cluster's own contention (20 pods starting at once on two cores) is not counted
as the engines' overhead.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client, watch

from tests.bench import chains
from tests.bench.common import summary_ms
from tests.bench.podclock import PodClock, PodTimes

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


def measure_chains(
    namespace: str,
    image: str,
    floor_running: float | None,
    runs: int = 20,
    steps: int = 5,
    timeout: float = 600,
) -> dict[str, Any]:
    """`runs` chains of `steps` bare Jobs at once, each Job created when the one before it
    is seen stopped: the thinnest driver there is, timed as the engines' chains are.

    One pod watch (a PodClock) drives: a chain's next Job is created as soon as its
    current container is seen terminated (the earliest signal; kubehatch likewise starts a
    child when its parent's output appears, the pod's last act). Creations go to a thread
    pool, so that one slow create holds up no other chain. A chain's wall time runs from
    its first Job's creation to its last container seen terminated; its gaps are
    `chains.start_to_start` of its containers, the first after that first creation.
    `chains.figures` of these, plus the driver's own hand-off (a container seen terminated
    to the next Job's create sent), which should be near zero.
    """
    batch_id = uuid.uuid4().hex[:5]
    created: dict[tuple[int, int], float] = {}
    ended: dict[int, tuple[float, str]] = {}
    advanced: set[tuple[int, int]] = set()
    errors: list[BaseException] = []
    batch = client.BatchV1Api()
    pool = ThreadPoolExecutor(min(runs, 16))

    def create(chain: int, step: int) -> None:
        created[chain, step] = time.monotonic()
        try:
            batch.create_namespaced_job(namespace, _chain_job(batch_id, chain, step, image))
        except Exception as e:  # raised by the waiting thread: a pool's error is silent
            errors.append(e)

    def on_pod(pod: PodTimes) -> None:
        """The watch thread's hook after each pod event: cheap, never waits."""
        if pod.labels.get("chain-batch") != batch_id or "main" not in pod.terminated:
            return
        chain, step = int(pod.labels["chain"]), int(pod.labels["step"])
        if (chain, step) in advanced:
            return
        advanced.add((chain, step))
        if pod.exit_codes.get("main") != 0:
            ended[chain] = (pod.terminated["main"], "Failed")
        elif step + 1 < steps:
            pool.submit(create, chain, step + 1)
        else:
            ended[chain] = (pod.terminated["main"], "Succeeded")

    pods = PodClock(namespace, on_change=on_pod)
    pods.start_watching()
    try:
        list(pool.map(lambda i: create(i, 0), range(runs)))
        deadline = time.monotonic() + timeout
        while len(ended) < runs:
            if errors:
                raise errors[0]
            if not pods.is_alive():
                raise RuntimeError("the pod watch ended before the chains did")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{runs} bare chains did not finish in {timeout:.0f}s")
            time.sleep(0.1)
    finally:
        pods.stop()
        pool.shutdown(wait=True)
    by_step = {
        (p.labels.get("chain"), p.labels.get("step")): p
        for p in pods.pods.values()
        if p.labels.get("chain-batch") == batch_id
    }
    samples = chains.ChainSamples()
    handoffs: list[float] = []
    for i in range(runs):
        samples.walls.append(ended[i][0] - created[i, 0])
        samples.phases.append(ended[i][1])
        chain = [by_step.get((str(i), str(k))) for k in range(steps)]
        samples.gaps.extend(chains.start_to_start(created[i, 0], chain, "main"))
        handoffs.extend(
            created[i, k] - pod.terminated["main"]
            for k, pod in enumerate(chain[:-1], 1)
            if pod is not None and (i, k) in created
        )
    return {
        **chains.figures([samples], floor_running),
        "steps": steps,
        "driver_handoff_ms": summary_ms(handoffs),
    }


def _chain_job(batch_id: str, chain: int, step: int, image: str) -> dict[str, Any]:
    """A bare Job of one chain's step, its pod labelled so the watch knows whose it is."""
    job = bare_job(f"chain-{batch_id}-{chain}-s{step}", image)
    job["spec"]["template"]["metadata"]["labels"].update(
        {"chain-batch": batch_id, "chain": str(chain), "step": str(step)}
    )
    return job
