"""Where the CPU goes: seconds of CPU by cluster component over one phase of the bench.

With 20 runs in flight on two cores, every component waits for CPU, so a millisecond of
CPU an engine adds to each step costs many milliseconds of wall time. This reads what
each process of the local cluster (`make cluster-up`: host processes) and the pods'
cgroup used, so that the table can say which part of a step's cost is whose. On a
cluster whose components are not host processes (kind) the figures are simply absent.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
COMPONENTS = {
    "etcd": "etcd",
    "kube-apiserver": "API server",
    "kube-controller": "controller manager",
    "kube-scheduler": "scheduler",
    "kubelet": "kubelet",
    "containerd": "containerd",
    "containerd-shim": "containerd shims",
}
"""Process names (as /proc/PID/stat has them, cut to 15 characters) by component."""
ENGINES = {"kubehatch_operator": "kubehatch operator", "workflow-controller": "Argo controller"}
"""A word of the command line that names an engine's controller (host processes)."""
MACHINE = "machine (every process)"
"""The machine's busy time: the cross-check, as processes that end within a phase (the
shims and runc of pods already gone) are missing from their components' figures."""
POD_CGROUPS = (
    Path("/sys/fs/cgroup/cpuacct/kubepods/cpuacct.usage"),  # cgroup v1: nanoseconds
    Path("/sys/fs/cgroup/kubepods.slice/cpu.stat"),  # cgroup v2: usage_usec
)


def sample() -> dict[str, float]:
    """CPU seconds used so far, by component (children they waited for included)."""
    used: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = sum(int(f) for f in fields[11:15]) / TICK  # utime stime cutime cstime
        component = COMPONENTS.get(name) or next(
            (engine for word, engine in ENGINES.items() if word in command), None
        )
        if component is not None:
            used[component] = used.get(component, 0.0) + seconds
    pods = _pods_seconds()
    if pods is not None:
        used["step pods"] = pods
    with open("/proc/stat") as stat_file:
        ticks = [int(t) for t in stat_file.readline().split()[1:]]
    used[MACHINE] = (sum(ticks) - ticks[3] - ticks[4]) / TICK  # all but idle and iowait
    return used


def _pods_seconds() -> float | None:
    for path in POD_CGROUPS:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name == "cpuacct.usage":
            return int(text) / 1e9
        fields = dict(line.split() for line in text.splitlines() if line)
        return int(fields["usage_usec"]) / 1e6
    return None


def per_step_ms(before: dict[str, float], after: dict[str, float], steps: int) -> dict[str, float]:
    """Milliseconds of CPU per step by component, between two samples."""
    return {
        name: round(1000 * (after[name] - before.get(name, 0.0)) / steps, 1)
        for name in sorted(after)
        if after[name] > before.get(name, 0.0)
    }
