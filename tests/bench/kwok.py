"""kwok as a host process: fake nodes whose pods become ready and complete at once.

Scale runs measure the operator and the API server, not containers: kwok (built by
`hack/peers/build-peers.sh kwok`) plays the kubelet of nodes labelled ``type=kwok``
and tainted ``kwok.x-k8s.io/node=fake:NoSchedule``, so only pods that select and
tolerate them land there; the real node of the local cluster stays untouched.

The Stages are kwok's own defaults for v0.8 (``kustomize/stage/{node,pod}`` in its Go
module, read from the module cache), passed in kwok's config file rather than as
Stage objects, so that nothing cluster-wide (no CRD) is left behind. Changes: pods of
the workflows named in `hold` stay Running (runs that stay active as long as a scale
run needs them); pods owned by other kinds than Jobs can complete (Argo's pods are
owned by its Workflow); `extra_stages` adds Stages of one's own.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import REPO_ROOT, wait_for

NODE_LABEL = ("type", "kwok")
TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
NODE_SELECTOR = {NODE_LABEL[0]: NODE_LABEL[1]}
TOLERATIONS = [{"key": TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}]
HOLD_LABEL = "kubehatch.dev/workflow"
"""Pods whose value of this label is in `Kwok.hold` never complete."""
# The Stages of kwok's "fast" set (kustomize/stage/fast) that scale runs need.
STAGE_DIRS = ("stage/node/fast", "stage/node/heartbeat-with-lease", "stage/pod/fast")
POD_CIDR = "10.250.0.0/16"
"""Fake pod IPs (nothing routes to them): a pool large enough for 20,000 pods."""
NODE_IP = "10.250.255.254"


def versions() -> dict[str, str]:
    """hack/versions.env, the one place the peers' versions are pinned."""
    pins = {}
    for line in (REPO_ROOT / "hack" / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            pins[key.strip()] = value.strip()
    return pins


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubehatch"
    return Path(os.environ.get("KUBEHATCH_CACHE") or default)


def kwok_binary(build: bool = True) -> Path:
    """The pinned kwok, built from its Go module if missing (a warm cache never rebuilds)."""
    version = versions()["KWOK_VERSION"]
    path = cache_dir() / "bin" / f"kwok-{version}" / "kwok"
    if not path.exists() and build:
        subprocess.run(["bash", str(REPO_ROOT / "hack/peers/build-peers.sh"), "kwok"], check=True)
    return path


def module_dir(version: str | None = None) -> Path:
    """kwok's Go module in the module cache (downloaded if needed; the build did it)."""
    version = version or versions()["KWOK_VERSION"]
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{version}"],
        capture_output=True, text=True, check=True, cwd="/",
    ).stdout  # fmt: skip
    return Path(json.loads(out)["Dir"])


def default_stages(module: Path) -> list[dict[str, Any]]:
    """kwok's own Stages, as its kustomizations list them (plain resource lists only)."""
    stages = []
    for directory in STAGE_DIRS:
        base = module / "kustomize" / directory
        for name in yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]:
            stages.extend(d for d in yaml.safe_load_all((base / name).read_text()) if d)
    return stages


# What a kubelet does when a pod is deleted before it ends: stop it, report it Failed.
# kwok's fast pod-delete force-deletes at once, but a Job's pod keeps the Job controller's
# finalizer until it is terminal: a pod deleted while Running (a cancelled or held run, a
# deleted namespace) would stay Terminating for ever.
POD_TERMINATE = {
    "apiVersion": "kwok.x-k8s.io/v1alpha1",
    "kind": "Stage",
    "metadata": {"name": "pod-terminate"},
    "spec": {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {"matchExpressions": [
            {"key": ".metadata.deletionTimestamp", "operator": "Exists"},
            {"key": ".status.phase", "operator": "NotIn", "values": ["Succeeded", "Failed"]},
        ]},
        "next": {"statusTemplate": """
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: 137
      finishedAt: {{ Now | Quote }}
      reason: Error
      startedAt: {{ Now | Quote }}
{{ end }}
phase: Failed
"""},
    },
}  # fmt: skip


FAKE_JOBS = "kwok.x-k8s.io/fake"
"""A Job's spec.managedBy that the Job controller leaves alone (JobManagedBy, on by default
since 1.32) and kwok completes at once, with no pod: what a scale run uses to measure an
operator and the API server without the Job controller's client rate limit."""
JOB_COMPLETE = {
    "apiVersion": "kwok.x-k8s.io/v1alpha1",
    "kind": "Stage",
    "metadata": {"name": "job-complete"},
    "spec": {
        "resourceRef": {"apiGroup": "batch/v1", "kind": "Job"},
        "selector": {"matchExpressions": [
            {"key": ".spec.managedBy", "operator": "In", "values": [FAKE_JOBS]},
            {"key": ".status.completionTime", "operator": "DoesNotExist"},
        ]},
        "next": {"statusTemplate": """
{{ $now := Now }}
startTime: {{ $now | Quote }}
completionTime: {{ $now | Quote }}
succeeded: 1
active: 0
ready: 0
terminating: 0
conditions:
- type: SuccessCriteriaMet
  status: "True"
  reason: CompletionsReached
  message: Reached expected number of succeeded pods
  lastProbeTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
- type: Complete
  status: "True"
  reason: CompletionsReached
  message: Reached expected number of succeeded pods
  lastProbeTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
"""},
    },
}  # fmt: skip


def adapt_stages(
    stages: list[dict[str, Any]], hold: Iterable[str], owners: Iterable[str]
) -> list[dict[str, Any]]:
    """kwok's Stages, changed: pods of the `hold` workflows stay Running; pods owned by any
    of `owners` complete (kwok's default: Jobs only); a deleted pod is made terminal
    (POD_TERMINATE), and removed once terminal and without finalizers; Jobs managed by
    FAKE_JOBS complete (JOB_COMPLETE)."""
    hold = sorted(hold)
    for stage in stages:
        expressions = stage["spec"]["selector"]["matchExpressions"]
        if stage["metadata"]["name"] == "pod-delete":
            expressions += [
                {"key": ".status.phase", "operator": "In", "values": ["Succeeded", "Failed"]},
                {"key": ".metadata.finalizers", "operator": "DoesNotExist"},
            ]
        if stage["metadata"]["name"] != "pod-complete":
            continue
        for expression in expressions:
            if expression["key"] == ".metadata.ownerReferences.[].kind":
                expression["values"] = sorted(owners)
        if hold:
            expressions.append(
                {"key": f'.metadata.labels["{HOLD_LABEL}"]', "operator": "NotIn", "values": hold}
            )
    return [*stages, copy.deepcopy(POD_TERMINATE), copy.deepcopy(JOB_COMPLETE)]


def node_manifest(name: str, pods: int) -> dict[str, Any]:
    """A fake node as kwok's docs write it: kwok fills in its status once it manages it."""
    resources = {"cpu": "1k", "memory": "1Ti", "pods": str(pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                NODE_LABEL[0]: NODE_LABEL[1],
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "spec": {"taints": [TAINT]},
        "status": {"allocatable": resources, "capacity": resources},
    }


class Kwok:
    """One kwok process and the fake nodes it manages (a context manager)."""

    def __init__(
        self,
        log_dir: Path,
        nodes: int = 10,
        pods_per_node: int = 5000,
        prefix: str = "scale-kwok",
        hold: Iterable[str] = (),
        owners: Iterable[str] = ("Job",),
        extra_stages: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.log_dir = log_dir
        self.nodes = [f"{prefix}-{i}" for i in range(nodes)]
        self.pods_per_node = pods_per_node
        self.hold = tuple(hold)
        self.owners = tuple(owners)
        self.extra_stages = list(extra_stages)
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        """kwok's config file: its options, then every Stage (one YAML document each)."""
        options = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            # kwok applies no defaults to a config file's options: all of them, then.
            # More parallel pod stage plays than the default 4: thousands of pods at once.
            "options": {
                "cidr": POD_CIDR,
                "nodeIP": NODE_IP,
                "podPlayStageParallelism": 16,
                "nodePlayStageParallelism": 4,
                "nodeLeaseParallelism": 4,
                "nodeLeaseDurationSeconds": 40,
                "podsOnNodeSyncParallelism": 1,
                "enableDebuggingHandlers": False,
            },
        }
        stages = adapt_stages(default_stages(module_dir()), self.hold, self.owners)
        stages += self.extra_stages
        return yaml.safe_dump_all([options, *stages], sort_keys=False)

    def start(self) -> Kwok:
        binary = kwok_binary()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        config = self.log_dir / "kwok.yaml"
        config.write_text(self.config())
        log = open(self.log_dir / "kwok.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                str(binary), f"--kubeconfig={os.environ['KUBECONFIG']}", f"--config={config}",
                f"--manage-nodes-with-label-selector={NODE_LABEL[0]}={NODE_LABEL[1]}",
                "--v=WARN",  # else a line for every pod it patches
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.create_nodes()
        return self

    def create_nodes(self) -> None:
        core = client.CoreV1Api()

        def create(name: str) -> None:
            try:
                core.create_node(node_manifest(name, self.pods_per_node))
            except ApiException as err:
                if err.status != 409:
                    raise

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, self.nodes))
        wait_for(self.nodes_ready, 60, f"{len(self.nodes)} kwok nodes to be Ready")

    def nodes_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"kwok exited ({self.proc.returncode}); see {self.log_dir}/kwok.log")
        selector = f"{NODE_LABEL[0]}={NODE_LABEL[1]}"
        items = client.CoreV1Api().list_node(label_selector=selector).items
        ready = {
            n.metadata.name
            for n in items
            if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
        }
        return ready >= set(self.nodes)

    def stop(self) -> None:
        """Delete the fake nodes, then stop kwok (even when the API server is away)."""
        core = client.CoreV1Api()
        try:
            for name in self.nodes:
                try:
                    core.delete_node(name)
                except ApiException as err:
                    if err.status != 404:
                        raise
        finally:
            if self.proc is not None:
                self.proc.terminate()
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                self.proc = None

    def __enter__(self) -> Kwok:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
