"""Start and stop the cluster's processes by pid file, and undo what they leave behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .components import Component
from .layout import Layout
from .network import in_node


class ClusterError(RuntimeError):
    """A failure with a message that says what is wrong and what to do about it."""


def _pid_file(layout: Layout, name: str) -> Path:
    return layout.pids / f"{name}.pid"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat, field 22)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_of(layout: Layout, name: str) -> int | None:
    """The pid of a running component, or None if it is not running.

    The pid file holds the pid and the process's start time: a pid the kernel has since
    recycled for another program has another start time, so it is never mistaken for ours.
    """
    try:
        pid_text, started = _pid_file(layout, name).read_text().split()
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    if _start_time(pid) != started or not _alive(pid):
        return None
    return pid


def start(layout: Layout, component: Component) -> int:
    """Start a component in the node namespace unless it already runs; return its pid."""
    running = pid_of(layout, component.name)
    if running:
        return running
    for path, text in component.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.pids.mkdir(parents=True, exist_ok=True)
    with open(layout.logs / f"{component.name}.log", "ab") as log:
        proc = subprocess.Popen(
            in_node(layout.network, component.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _pid_file(layout, component.name).write_text(f"{proc.pid} {_start_time(proc.pid)}")
    return proc.pid


def log_tail(layout: Layout, name: str, lines: int = 15) -> str:
    path = layout.logs / f"{name}.log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def check_alive(layout: Layout, name: str) -> None:
    if pid_of(layout, name) is None:
        raise ClusterError(
            f"{name} exited during start-up. Last lines of {layout.logs / (name + '.log')}:\n"
            + log_tail(layout, name)
        )


def _terminate(pids: list[int], grace: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits for its parent to reap it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def stop(layout: Layout, name: str, grace: float = 10.0) -> bool:
    pid = pid_of(layout, name)
    _pid_file(layout, name).unlink(missing_ok=True)
    if pid is None:
        return False
    _terminate([pid], grace)
    return True


def _pids_matching(fragment: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if fragment.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _cgroup_pids(root: str = "/sys/fs/cgroup/pids/kubepods") -> list[int]:
    pids: list[int] = []
    for procs in Path(root).rglob("cgroup.procs") if Path(root).exists() else []:
        pids.extend(int(p) for p in procs.read_text().split())
    return pids


def sweep(layout: Layout) -> None:
    """Stop any process still pointing at the cluster's files, even one whose pid file is lost."""
    own = os.getpid()
    pids = {p for root in (layout.state, layout.run_dir) for p in _pids_matching(str(root))}
    _terminate(sorted(pids - {own}), grace=5.0)


def stop_containers(layout: Layout) -> None:
    """Kill every pod process and the containerd shims that watch them."""
    _terminate(_cgroup_pids(), grace=5.0)
    _terminate(_pids_matching(str(layout.containerd_socket)), grace=5.0)


def remove_pod_cgroups() -> None:
    """Remove the kubepods cgroups the kubelet made, deepest first."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        root = controller / "kubepods"
        if not root.is_dir():
            continue
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def unmount_under(*roots: Path) -> None:
    """Unmount everything mounted below the given directories, deepest first."""
    prefixes = tuple(str(r) for r in roots)
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefixes) or point.startswith("/run/netns/cni-"):
            mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    for netns in Path("/run/netns").glob("cni-*") if Path("/run/netns").exists() else []:
        netns.unlink(missing_ok=True)
