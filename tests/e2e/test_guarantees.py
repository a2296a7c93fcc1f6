"""The operator's guarantees, proven on the real cluster under stress.

- Chaos: the operator is SIGKILLed at random moments every 2-5 s and restarted while
  chains of three steps run. Every run still succeeds with the right outputs, no step
  attempt gets two Jobs, attempts match the run's status, and a workflow limited to one
  run at a time never has two step pods running at once.
- Restart: etcd and kube-apiserver restart in the middle of 20 runs. Nothing is lost and
  the operator reconnects by itself (its process is never restarted).
- A second writer: another client patches the runs' labels and annotations every ~100 ms
  while they progress. Every run succeeds, the other client's metadata survives, and no
  observed status transition goes backwards.

Each test has an operator process of its own watching the ``e2e-chaos-*`` namespaces,
which no other test's operator watches. The watchers and checks here are shared with
`python -m tests.bench.chaos`, which runs the chaos scenario with 100 runs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kubehatch import workflow_manifests
from tests.e2e import kube
from tests.e2e.operator_process import Chaos, OperatorProcess
from tests.e2e.support import REPO_ROOT
from tests.e2e.workers import guarantees

pytestmark = pytest.mark.e2e

NAMESPACES = "e2e-chaos-*"
LABEL_RUN = "kubehatch.dev/run"
LABEL_STEP = "kubehatch.dev/step"
LABEL_ATTEMPT = "kubehatch.dev/attempt"
LABEL_WORKFLOW = "kubehatch.dev/workflow"
FINISHED = {"Succeeded", "Failed", "Cancelled", "TimedOut"}
FINAL_STEP = {"Succeeded", "Failed", "Skipped", "Cancelled", "TimedOut"}
MANIFESTS = {m["metadata"]["name"]: m for m in workflow_manifests(guarantees.worker)}


# --- set-up ----------------------------------------------------------------------------------
def make_namespace(prefix: str = "e2e-chaos") -> str:
    """A namespace with the step ServiceAccount in it, as the `op_namespace` fixture makes."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    kube.create_step_service_account(name)
    return name


def apply_workflow(namespace: str, workflow: str, image: str) -> None:
    """One of the guarantee workflows, pointed at its worker inside the e2e image."""
    manifest = MANIFESTS[workflow]
    manifest = {**manifest, "spec": {**manifest["spec"], "worker": guarantees.WORKER_REF}}
    kube.apply_workflow(namespace, manifest, image)


def create_run(namespace: str, name: str, workflow: str, data: dict[str, Any]) -> None:
    """Create a run, retrying while the API server does not answer (a restart)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            kube.create_run(namespace, name, workflow, data)
            return
        except ApiException as err:
            if err.status == 409:
                return  # an earlier try got through
            if time.monotonic() > deadline or err.status < 500:
                raise
        except Exception:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def list_runs(namespace: str) -> dict[str, dict[str, Any]]:
    items = client.CustomObjectsApi().list_namespaced_custom_object(
        kube.GROUP, kube.VERSION, namespace, "workflowruns"
    )["items"]
    return {item["metadata"]["name"]: item for item in items}


def wait_until_finished(
    namespace: str, names: list[str], timeout: float, operator: OperatorProcess | None = None
) -> dict[str, dict[str, Any]]:
    """Every named run in a final phase; on timeout, fail with where each one is."""
    deadline = time.monotonic() + timeout
    runs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the API server may be restarting
            runs = list_runs(namespace)
            if all(_phase(runs.get(n)) in FINISHED for n in names):
                return runs
        time.sleep(1)
    stuck = {n: _summary(runs.get(n)) for n in names if _phase(runs.get(n)) not in FINISHED}
    tail = f"\noperator log (tail):\n{operator.log_tail(30)}" if operator else ""
    raise AssertionError(
        f"{len(stuck)} of {len(names)} runs did not finish within {timeout:.0f}s: {stuck}{tail}"
    )


def _phase(run: dict[str, Any] | None) -> str | None:
    return ((run or {}).get("status") or {}).get("phase")


def _summary(run: dict[str, Any] | None) -> dict[str, Any]:
    status = (run or {}).get("status") or {}
    steps = {
        name: f"{step.get('phase')}#{step.get('attempts')}"
        for name, step in (status.get("steps") or {}).items()
    }
    return {"phase": status.get("phase"), "progress": status.get("progress"), "steps": steps}


# --- watchers (threads that survive an API server restart) -------------------------------
class Watcher(threading.Thread):
    """Lists, then watches, a namespaced collection; relists after any error."""

    def __init__(self, list_call: Callable[..., Any], namespace: str, **list_kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.list_call = list_call
        self.namespace = namespace
        self.list_kwargs = list_kwargs
        self.stopped = threading.Event()
        self.errors = 0

    def observe(self, obj: dict[str, Any], kind: str) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                listing = self.list_call(self.namespace, **self.list_kwargs)
                listing = _plain(listing)
                for item in listing.get("items") or []:
                    self.observe(item, "LIST")
                version = listing["metadata"]["resourceVersion"]
                stream = watch.Watch()
                for event in stream.stream(
                    self.list_call,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=30,
                    **self.list_kwargs,
                ):
                    if event["type"] == "ERROR":
                        break  # 410 Gone and the like: list again
                    self.observe(_plain(event["object"]), event["type"])
                    if self.stopped.is_set():
                        stream.stop()
            except Exception:
                self.errors += 1
                time.sleep(0.5)

    def stop(self) -> None:
        self.stopped.set()


_SERIALIZER = client.ApiClient()


def _plain(obj: Any) -> dict[str, Any]:
    """A watched object as the API server's JSON (the typed client returns models)."""
    if isinstance(obj, dict):
        return obj
    return _SERIALIZER.sanitize_for_serialization(obj)


@dataclass(frozen=True)
class Observed:
    """What one watch event showed of a run's status."""

    version: int
    phase: str | None
    progress: tuple[int, int] | None
    steps: dict[str, tuple[str | None, int]]


def _observed(run: dict[str, Any]) -> Observed:
    status = run.get("status") or {}
    progress = None
    if isinstance(status.get("progress"), str) and "/" in status["progress"]:
        done, total = status["progress"].split("/", 1)
        progress = (int(done), int(total))
    steps = {
        name: (step.get("phase"), int(step.get("attempts") or 0))
        for name, step in (status.get("steps") or {}).items()
    }
    return Observed(int(run["metadata"]["resourceVersion"]), status.get("phase"), progress, steps)


class RunWatch(Watcher):
    """Every status of every run, in the order the watch delivered them."""

    def __init__(self, namespace: str) -> None:
        super().__init__(self._list, namespace)
        self.history: dict[str, list[Observed]] = defaultdict(list)
        self.lock = threading.Lock()

    @staticmethod
    def _list(namespace: str, **kwargs: Any) -> Any:
        return client.CustomObjectsApi().list_namespaced_custom_object(
            kube.GROUP, kube.VERSION, namespace, "workflowruns", **kwargs
        )

    def observe(self, obj: dict[str, Any], kind: str) -> None:
        if kind == "DELETED":
            return
        seen = _observed(obj)
        with self.lock:
            history = self.history[obj["metadata"]["name"]]
            if history and history[-1].version >= seen.version:
                return  # a relist repeating what the watch showed
            history.append(seen)

    def violations(self) -> list[str]:
        """Every observed transition that goes backwards."""
        problems: list[str] = []
        with self.lock:
            histories = {name: list(h) for name, h in self.history.items()}
        for name, history in sorted(histories.items()):
            for before, after in itertools.pairwise(history):
                problems += [
                    f"run {name} (rv {before.version} -> {after.version}): {p}"
                    for p in _backwards(before, after)
                ]
        return problems


def _backwards(before: Observed, after: Observed) -> list[str]:
    problems = []
    if before.phase in FINISHED and after.phase != before.phase:
        problems.append(f"phase went {before.phase} -> {after.phase}")
    if before.progress and (
        after.progress is None
        or after.progress[0] < before.progress[0]
        or after.progress[1] != before.progress[1]
    ):
        problems.append(f"progress went {before.progress} -> {after.progress}")
    for step, (phase, attempts) in before.steps.items():
        if step not in after.steps:
            problems.append(f"step {step} vanished from status (was {phase})")
            continue
        new_phase, new_attempts = after.steps[step]
        if phase in FINAL_STEP and new_phase != phase:
            problems.append(f"step {step} went {phase} -> {new_phase}")
        if new_attempts < attempts:
            problems.append(f"step {step} attempts went {attempts} -> {new_attempts}")
    return problems


class JobWatch(Watcher):
    """Every Job (by uid) ever seen for each (run, step, attempt)."""

    def __init__(self, namespace: str) -> None:
        super().__init__(
            client.BatchV1Api().list_namespaced_job,
            namespace,
            label_selector="app.kubernetes.io/managed-by=kubehatch",
        )
        self.uids: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self.lock = threading.Lock()

    def observe(self, obj: dict[str, Any], kind: str) -> None:
        labels = obj["metadata"].get("labels") or {}
        if LABEL_RUN not in labels:
            return
        key = (labels[LABEL_RUN], labels.get(LABEL_STEP, "?"), labels.get(LABEL_ATTEMPT, "?"))
        with self.lock:
            self.uids[key].add(obj["metadata"]["uid"])

    def duplicates(self) -> list[str]:
        with self.lock:
            return [
                f"run {run} step {step} attempt {attempt}: {len(uids)} Jobs, uids {sorted(uids)}"
                for (run, step, attempt), uids in sorted(self.uids.items())
                if len(uids) > 1
            ]


class PodSampler(threading.Thread):
    """Counts the runs of a workflow with a running step pod every ``period`` seconds.

    Runs, not pods: within one run a child starts as soon as its parent's output is
    written, while the parent's pod is still on its way out.
    """

    def __init__(self, namespace: str, workflow: str, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.namespace = namespace
        self.selector = f"{LABEL_WORKFLOW}={workflow}"
        self.period = period
        self.stopped = threading.Event()
        self.samples = 0
        self.max_running = 0
        self.overlaps: list[list[str]] = []

    def run(self) -> None:
        core = client.CoreV1Api()
        while not self.stopped.wait(self.period):
            try:
                pods = core.list_namespaced_pod(
                    self.namespace, label_selector=self.selector, _request_timeout=5
                ).items
            except Exception:
                continue
            running = sorted(p.metadata.name for p in pods if p.status.phase == "Running")
            runs = {
                (p.metadata.labels or {}).get(LABEL_RUN)
                for p in pods
                if p.status.phase == "Running"
            }
            self.samples += 1
            self.max_running = max(self.max_running, len(runs))
            if len(runs) > 1:
                self.overlaps.append(running)

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)


@contextlib.contextmanager
def watching(namespace: str) -> Iterator[tuple[RunWatch, JobWatch]]:
    runs, jobs = RunWatch(namespace), JobWatch(namespace)
    runs.start()
    jobs.start()
    time.sleep(1)  # both are watching before the first run exists
    try:
        yield runs, jobs
    finally:
        runs.stop()
        jobs.stop()


# --- checks ----------------------------------------------------------------------------------
@dataclass
class Report:
    """Problems found, by guarantee: a test shows them all at once, not only the first."""

    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, guarantee: str, problems: list[str]) -> None:
        if problems:
            self.problems.setdefault(guarantee, []).extend(problems)

    def text(self, limit: int = 8) -> str:
        lines = []
        for guarantee, problems in self.problems.items():
            lines.append(f"{guarantee}: {len(problems)} problem(s)")
            lines += [f"  - {p}" for p in problems[:limit]]
            if len(problems) > limit:
                lines.append(f"  ... and {len(problems) - limit} more")
        return "\n".join(lines)

    def check(self) -> None:
        assert not self.problems, "guarantees broken:\n" + self.text()


def check_runs(
    namespace: str,
    runs: dict[str, dict[str, Any]],
    seeds: dict[str, str],
    report: Report,
    *,
    single_attempt: bool,
) -> None:
    """Each run Succeeded, its outputs right, its Jobs one per attempt as its status says."""
    core, batch = client.CoreV1Api(), client.BatchV1Api()
    for name, seed in sorted(seeds.items()):
        run = runs.get(name)
        status = (run or {}).get("status") or {}
        if status.get("phase") != "Succeeded":
            report.add("every run Succeeded", [f"run {name}: {_summary(run)}"])
            continue
        expected = guarantees.expected_values(seed)
        jobs = batch.list_namespaced_job(namespace, label_selector=f"{LABEL_RUN}={name}").items
        by_step: dict[str, list[int]] = defaultdict(list)
        for job in jobs:
            labels = job.metadata.labels or {}
            by_step[labels.get(LABEL_STEP, "?")].append(int(labels.get(LABEL_ATTEMPT, "0")))
        for step in guarantees.CHAIN_STEPS:
            recorded = (status.get("steps") or {}).get(step) or {}
            attempts = int(recorded.get("attempts") or 0)
            made = sorted(by_step.get(step, []))
            if len(made) != len(set(made)):
                report.add("one Job per step attempt", [f"run {name} step {step}: {made}"])
            if made != list(range(1, attempts + 1)):
                report.add(
                    "Jobs match the attempts in status",
                    [f"run {name} step {step}: status says {attempts}, Jobs {made}"],
                )
            if single_attempt and attempts != 1:
                report.add(
                    "no attempt without a failure",
                    [f"run {name} step {step}: {attempts} attempts of a step that never fails"],
                )
            configmap = recorded.get("outputConfigMap")
            try:
                data = core.read_namespaced_config_map(configmap, namespace).data or {}
                output = json.loads(data.get("output.json", "null")) or {}
            except Exception as err:
                report.add("outputs right", [f"run {name} step {step}: {configmap}: {err}"])
                continue
            want = {"value": expected[step], "run": name, "attempt": attempts}
            got = {k: output.get(k) for k in want}
            if got != want:
                report.add("outputs right", [f"run {name} step {step}: {got} != {want}"])


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def handoffs(runs: dict[str, dict[str, Any]]) -> list[tuple[float, str]]:
    """Seconds from each step's parent finishing to the step starting, slowest first."""
    gaps = []
    for name, run in runs.items():
        steps = ((run.get("status") or {}).get("steps")) or {}
        for parent, child in itertools.pairwise(guarantees.CHAIN_STEPS):
            done = _time((steps.get(parent) or {}).get("finishedAt"))
            began = _time((steps.get(child) or {}).get("startedAt"))
            if done and began:
                gaps.append(((began - done).total_seconds(), f"run {name} step {child}"))
    return sorted(gaps, reverse=True)


def restart_components(*components: str) -> float:
    """Restart parts of the local cluster; the outage's length in seconds."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "localcluster", "restart", *components],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "hack" / "cluster")},
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.monotonic() - started


def local_cluster() -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "localcluster", "kubeconfig"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "hack" / "cluster")},
        capture_output=True,
        text=True,
    )
    ours = result.stdout.strip()
    return bool(ours) and Path(ours).exists() and os.environ.get("KUBECONFIG") == ours


# --- the chaos scenario (shared with the benchmark) ---------------------------------------------
@dataclass
class ChaosResult:
    runs: int
    limited_runs: int
    wall_seconds: float
    kills: int
    max_limited_running: int
    pod_samples: int
    succeeded: int
    slowest_handoff: float
    report: Report


def chaos_scenario(
    namespace: str,
    image: str,
    operator: OperatorProcess,
    *,
    runs: int,
    limited_runs: int,
    sleep: float,
    timeout: float,
    interval: tuple[float, float] = (2.0, 5.0),
    seed: int | None = None,
) -> ChaosResult:
    """`runs` chains and `limited_runs` runs of one key of the limited workflow, while the
    operator is SIGKILLed every `interval` seconds; everything checked afterwards."""
    apply_workflow(namespace, "g-chain", image)
    apply_workflow(namespace, "g-limited", image)
    chaos = Chaos(operator, interval, seed)
    sampler = PodSampler(namespace, "g-limited")
    report = Report()
    seeds: dict[str, str] = {}
    started = time.monotonic()
    with watching(namespace) as (run_watch, job_watch):
        sampler.start()
        chaos.start()
        try:
            for i in range(limited_runs):
                # Names that sort against the order of creation, as generateName's random
                # suffixes often do: an operator lists runs by name when it starts.
                name = f"limited-{limited_runs - i:03d}"
                seeds[name] = name
                data = {"seed": name, "sleep": sleep / 2, "key": "same"}
                create_run(namespace, name, "g-limited", data)
            for i in range(runs):
                name = f"chain-{i:03d}"
                seeds[name] = name
                create_run(namespace, name, "g-chain", {"seed": name, "sleep": sleep})
            final = wait_until_finished(namespace, sorted(seeds), timeout, operator)
        finally:
            chaos.stop()
            sampler.stop()
        wall = time.monotonic() - started
        time.sleep(1)  # the watches catch up
    check_runs(namespace, final, seeds, report, single_attempt=True)
    report.add("one Job per step attempt (watched)", job_watch.duplicates())
    report.add("status never goes backwards", run_watch.violations())
    if sampler.max_running > 1:
        report.add(
            "at most 1 run of the limited workflow with running pods",
            [f"{len(sampler.overlaps)} of {sampler.samples} samples, e.g. {sampler.overlaps[:3]}"],
        )
    succeeded = sum(_phase(final.get(n)) == "Succeeded" for n in seeds)
    gaps = handoffs({n: final[n] for n in seeds if n in final})
    return ChaosResult(
        runs=runs,
        limited_runs=limited_runs,
        wall_seconds=round(wall, 1),
        kills=len(chaos.kills),
        max_limited_running=sampler.max_running,
        pod_samples=sampler.samples,
        succeeded=succeeded,
        slowest_handoff=round(gaps[0][0], 1) if gaps else 0.0,
        report=report,
    )


# --- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def chaos_namespace(kubeconfig: str) -> Iterator[str]:
    name = make_namespace()
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            client.CoreV1Api().delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def own_operator(crds: None, tmp_path: Path) -> Iterator[OperatorProcess]:
    """An operator of this test's own, watching only the e2e-chaos-* namespaces."""
    proc = OperatorProcess(NAMESPACES, tmp_path / "operator.log")
    proc.start()
    yield proc
    proc.stop()
    print(f"operator log: {proc.log_path}\n{proc.log_tail(20)}")


# --- the tests --------------------------------------------------------------------------------
CHAOS_RUNS = int(os.environ.get("KUBEHATCH_CHAOS_RUNS", "12"))


@pytest.mark.timeout(600)
def test_runs_survive_an_operator_killed_every_few_seconds(
    chaos_namespace: str, step_image: str, own_operator: OperatorProcess
) -> None:
    result = chaos_scenario(
        chaos_namespace,
        step_image,
        own_operator,
        runs=CHAOS_RUNS,
        limited_runs=4,
        sleep=1.0,
        timeout=420,
    )
    print(
        f"chaos: {result.runs}+{result.limited_runs} runs in {result.wall_seconds}s, "
        f"{result.kills} kills, at most {result.max_limited_running} limited run(s) with pods "
        f"running in {result.pod_samples} samples, slowest handoff {result.slowest_handoff}s"
    )
    assert result.kills >= 3, "the operator was hardly killed: the scenario proves nothing"
    assert result.pod_samples > 50
    result.report.check()


@pytest.mark.timeout(600)
def test_runs_survive_an_api_server_and_etcd_restart(
    chaos_namespace: str, step_image: str, own_operator: OperatorProcess
) -> None:
    if not local_cluster():
        pytest.skip("restarts the local cluster's components (KUBECONFIG is another cluster)")
    apply_workflow(chaos_namespace, "g-chain-retry", step_image)
    seeds = {f"before-{i:02d}": f"before-{i:02d}" for i in range(15)}
    seeds.update({f"after-{i:02d}": f"after-{i:02d}" for i in range(5)})
    pid = own_operator.pid
    report = Report()
    with watching(chaos_namespace) as (run_watch, job_watch):
        for name in sorted(seeds):
            if name.startswith("before-"):
                create_run(chaos_namespace, name, "g-chain-retry", {"seed": name, "sleep": 0.3})

        def in_the_middle() -> bool:
            runs = list_runs(chaos_namespace)
            done = sum(_phase(r) in FINISHED for r in runs.values())
            jobs = client.BatchV1Api().list_namespaced_job(chaos_namespace).items
            return len(jobs) >= 10 or done >= 3

        deadline = time.monotonic() + 180
        while not in_the_middle():
            assert time.monotonic() < deadline, "the runs never got going"
            time.sleep(0.5)
        unfinished = [n for n, r in list_runs(chaos_namespace).items() if _phase(r) not in FINISHED]
        outage = restart_components("kube-apiserver", "etcd")
        for name in sorted(seeds):
            if name.startswith("after-"):
                create_run(chaos_namespace, name, "g-chain-retry", {"seed": name, "sleep": 0.3})
        final = wait_until_finished(chaos_namespace, sorted(seeds), 300, own_operator)
        time.sleep(1)
    gaps = handoffs({n: final[n] for n in seeds})
    print(
        f"restart: outage {outage:.1f}s, {len(unfinished)} runs unfinished at the restart, "
        f"slowest handoffs {[(round(s, 1), w) for s, w in gaps[:3]]}"
    )
    assert unfinished, "every run finished before the restart: it proves nothing"
    report.add(
        "the operator reconnects by itself",
        []
        if own_operator.alive() and own_operator.pid == pid
        else [f"the operator process exited (pid {pid}): {own_operator.log_tail(10)}"],
    )
    check_runs(chaos_namespace, final, seeds, report, single_attempt=False)
    report.add("one Job per step attempt (watched)", job_watch.duplicates())
    report.add("status never goes backwards", run_watch.violations())
    report.check()


HANDOFF_LIMIT = 30.0
"""A step starts within a second or two of its parent's end here; 30 s means it stalled."""


class MetadataWriter(threading.Thread):
    """A second client: patches labels and annotations of the runs every ~100 ms."""

    def __init__(self, namespace: str, names: list[str], period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.namespace = namespace
        self.names = names
        self.period = period
        self.stopped = threading.Event()
        self.patches = 0
        self.failures: list[str] = []
        self.last: dict[str, str] = {}
        """Per run, the last label value a patch of ours set."""

    def run(self) -> None:
        custom = client.CustomObjectsApi()
        tick = 0
        while not self.stopped.wait(self.period * random.uniform(0.5, 1.5)):
            tick += 1
            for name in self.names:
                value = f"t{tick}"
                patch = {
                    "metadata": {
                        "labels": {"e2e.kubehatch.dev/tick": value},
                        "annotations": {"e2e.kubehatch.dev/note": f"second writer {tick} ü"},
                    }
                }
                try:
                    custom.patch_namespaced_custom_object(
                        kube.GROUP, kube.VERSION, self.namespace, "workflowruns", name, patch
                    )
                except ApiException as err:
                    self.failures.append(f"{name}: {err.status} {err.reason}")
                    continue
                self.patches += 1
                self.last[name] = value

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)


@pytest.mark.timeout(600)
def test_runs_progress_while_another_client_patches_their_metadata(
    chaos_namespace: str, step_image: str, own_operator: OperatorProcess
) -> None:
    apply_workflow(chaos_namespace, "g-chain", step_image)
    seeds = {f"patched-{i:02d}": f"patched-{i:02d}" for i in range(8)}
    report = Report()
    with watching(chaos_namespace) as (run_watch, job_watch):
        for name in sorted(seeds):
            create_run(chaos_namespace, name, "g-chain", {"seed": name, "sleep": 1.0})
        writer = MetadataWriter(chaos_namespace, sorted(seeds))
        writer.start()
        try:
            final = wait_until_finished(chaos_namespace, sorted(seeds), 300, own_operator)
            time.sleep(2)  # the writer goes on a little after the runs finished
        finally:
            writer.stop()
        time.sleep(1)
    final = list_runs(chaos_namespace)
    print(f"second writer: {writer.patches} patches, {len(writer.failures)} failed")
    assert writer.patches > 100, "the second client hardly wrote: the test proves nothing"
    report.add("the second client's patches are accepted", writer.failures)
    lost = []
    for name, value in sorted(writer.last.items()):
        label = (final[name]["metadata"].get("labels") or {}).get("e2e.kubehatch.dev/tick")
        if label != value:
            lost.append(f"run {name}: label {label!r}, last written {value!r}")
    report.add("the second client's metadata survives", lost)
    gaps = handoffs({n: final[n] for n in seeds})
    print(f"slowest handoffs: {[(round(s, 1), w) for s, w in gaps[:3]]}")
    report.add(
        f"no handoff slower than {HANDOFF_LIMIT:.0f}s (a second writer must not stall runs)",
        [f"{what}: started {gap:.0f}s after its parent finished" for gap, what in gaps
         if gap > HANDOFF_LIMIT],
    )  # fmt: skip
    check_runs(chaos_namespace, final, seeds, report, single_attempt=True)
    report.add("one Job per step attempt (watched)", job_watch.duplicates())
    report.add("status never goes backwards", run_watch.violations())
    report.check()
