"""`PYTHONPATH=hack/cluster python3 -m localcluster COMMAND`: the cluster's CLI.

Commands: up, down, reset, status, kubeconfig, restart.

`restart COMPONENT...` stops the named components and starts them again (an outage of
the control plane or the node, for tests of what survives one), e.g.
`python3 -m localcluster restart kube-apiserver etcd`; `--kill` skips the graceful stop.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from . import components, deps, network, pki, processes
from .layout import Layout
from .processes import ClusterError


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def kubectl(layout: Layout, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(layout.kubernetes_bin / "kubectl"), f"--kubeconfig={layout.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_for(what: str, probe: Callable[[], bool], timeout: float, watch: list[str]) -> None:
    """Wait until probe() is true; fail early if a process it depends on has died."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if probe():
            return
        for name in watch:
            processes.check_alive(Layout.from_env(), name)
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")


def _ok(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0


def is_up(layout: Layout) -> bool:
    names = [f(layout).name for f in (*components.CONTROL_PLANE, *components.NODE)]
    if any(processes.pid_of(layout, n) is None for n in names) or not layout.kubeconfig.exists():
        return False
    return _ok(kubectl(layout, "get", "--raw", "/readyz"))


def up(layout: Layout) -> None:
    if network.exists(layout.network) and is_up(layout):
        log("cluster is already up")
        print_export(layout)
        return
    started = time.monotonic()
    deps.ensure_packages()
    deps.ensure_binaries(layout)
    for d in (layout.state, layout.run_dir):
        d.mkdir(parents=True, exist_ok=True)
    pki.ensure_pki(layout)
    pki.write_kubeconfigs(layout)
    network.create(layout.network)
    try:
        _start_all(layout)
    except BaseException:
        log("start-up failed: stopping what was started")
        down(layout, quiet=True)
        raise
    log(f"cluster is up in {time.monotonic() - started:.0f}s")
    print_export(layout)


def _start_all(layout: Layout) -> None:
    for make in components.CONTROL_PLANE:
        component = make(layout)
        log(f"starting {component.name}")
        processes.start(layout, component)
        if component.name == "kube-apiserver":
            wait_for(
                "the API server to be ready",
                lambda: _ok(kubectl(layout, "get", "--raw", "/readyz")),
                120,
                ["etcd", "kube-apiserver"],
            )
    log("starting containerd")
    processes.start(layout, components.containerd(layout))
    wait_for(
        "containerd's socket",
        lambda: layout.containerd_socket.exists(),
        30,
        ["containerd"],
    )
    log("building and importing images")
    deps.ensure_images(layout)
    for make in (components.kubelet, components.kube_proxy):
        component = make(layout)
        log(f"starting {component.name}")
        processes.start(layout, component)
    wait_for(
        f"node {layout.node_name} to be Ready",
        lambda: (
            kubectl(
                layout,
                "get",
                "node",
                layout.node_name,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            ).stdout.strip()
            == "True"
        ),
        180,
        ["kubelet", "containerd", "kube-proxy"],
    )
    wait_for(
        "the default ServiceAccount",
        lambda: _ok(kubectl(layout, "get", "serviceaccount", "default", "-n", "default")),
        60,
        ["kube-controller-manager"],
    )


def print_export(layout: Layout) -> None:
    print(f"export KUBECONFIG={layout.kubeconfig}")
    version = layout.versions["KUBERNETES_VERSION"]
    print(f"export PATH={layout.kubernetes_bin}:$PATH  # kubectl {version}")


def down(layout: Layout, quiet: bool = False) -> None:
    order = [f(layout).name for f in (components.kube_proxy, components.kubelet)]
    for name in order:
        if processes.stop(layout, name) and not quiet:
            log(f"stopped {name}")
    processes.stop_containers(layout)
    for make in (components.containerd, *reversed(components.CONTROL_PLANE)):
        name = make(layout).name
        if processes.stop(layout, name) and not quiet:
            log(f"stopped {name}")
    processes.sweep(layout)
    processes.unmount_under(layout.state, layout.run_dir)
    processes.remove_pod_cgroups()
    network.delete(layout.network)
    shutil.rmtree(layout.run_dir, ignore_errors=True)
    if not quiet:
        log("cluster is down")


def reset(layout: Layout) -> None:
    down(layout)
    shutil.rmtree(layout.state, ignore_errors=True)
    log(f"removed cluster state in {layout.state} (built binaries and images stay cached)")


def component_names(layout: Layout) -> list[str]:
    """Every component, in start order (each after those it needs)."""
    return [f(layout).name for f in (*components.CONTROL_PLANE, *components.NODE)]


def restart(layout: Layout, names: list[str], *, kill: bool = False, down: float = 0.0) -> None:
    """Stop the named components (dependents first), wait ``down`` seconds, start them
    again in start order, and wait until the cluster answers as before."""
    order = component_names(layout)
    unknown = sorted(set(names) - set(order))
    if unknown:
        raise ClusterError(
            f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(order)}"
        )
    if not is_up(layout):
        raise ClusterError("the cluster is not up; start it with `make cluster-up`")
    chosen = [n for n in order if n in names]
    makers = {f(layout).name: f for f in (*components.CONTROL_PLANE, *components.NODE)}
    started = time.monotonic()
    for name in reversed(chosen):
        processes.stop(layout, name, grace=0.0 if kill else 10.0)
        log(f"{'killed' if kill else 'stopped'} {name}")
    if down > 0:
        time.sleep(down)
    for name in chosen:
        processes.start(layout, makers[name](layout))
        log(f"started {name}")
        if name == "kube-apiserver":
            wait_for(
                "the API server to be ready",
                lambda: _ok(kubectl(layout, "get", "--raw", "/readyz")),
                120,
                ["etcd", "kube-apiserver"],
            )
        elif name == "containerd":
            wait_for("containerd's socket", lambda: layout.containerd_socket.exists(), 30, [name])
    wait_for(
        "the API server to be ready",
        lambda: _ok(kubectl(layout, "get", "--raw", "/readyz")),
        120,
        ["etcd", "kube-apiserver"],
    )
    log(f"restarted {', '.join(chosen)} in {time.monotonic() - started:.1f}s")


def status(layout: Layout) -> int:
    names = [f(layout).name for f in (*components.CONTROL_PLANE, *components.NODE)]
    for name in names:
        pid = processes.pid_of(layout, name)
        print(f"{name:26} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0 if is_up(layout) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    parser.add_argument(
        "command", choices=["up", "down", "reset", "status", "kubeconfig", "restart"]
    )
    parser.add_argument(
        "components",
        nargs="*",
        metavar="COMPONENT",
        help="for restart: the components to restart (etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy)",
    )
    parser.add_argument(
        "--kill", action="store_true", help="restart: SIGKILL instead of a graceful stop"
    )
    parser.add_argument(
        "--down-seconds",
        type=float,
        default=0.0,
        help="restart: how long the components stay stopped",
    )
    args = parser.parse_args(argv)
    if args.components and args.command != "restart":
        parser.error(f"{args.command} takes no components")
    if args.command == "restart" and not args.components:
        parser.error("restart needs at least one component, e.g. restart kube-apiserver etcd")
    layout = Layout.from_env()
    try:
        if args.command == "up":
            up(layout)
        elif args.command == "down":
            down(layout)
        elif args.command == "reset":
            reset(layout)
        elif args.command == "restart":
            restart(layout, args.components, kill=args.kill, down=args.down_seconds)
        elif args.command == "kubeconfig":
            print(layout.kubeconfig)
        else:
            return status(layout)
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(
            f"error: `{' '.join(map(str, err.cmd))}` failed with exit {err.returncode}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
