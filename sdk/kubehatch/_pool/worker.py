"""``kubehatch worker``: one worker of a WorkerPool, put together and run.

It connects to the cluster (the pod's ServiceAccount, or a developer's kubeconfig),
starts the zygote that loads the user's code once, watches the pool's tasks and runs
the loop until SIGTERM (pod deleted, scaled down) or Ctrl-C, then lets running steps
finish. Readiness is a file, so the pool's Deployment needs no port: it exists once the
code is loaded and the first listing worked, and goes when the worker shuts down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from kubehatch._apierrors import one_line
from kubehatch._pool.api import TaskApi, follow
from kubehatch._pool.events import Console, Shutdown
from kubehatch._pool.loop import Loop
from kubehatch._pool.runner import Children
from kubehatch._pool.state import Settings
from kubehatch.errors import KubehatchError

READY_FILE = Path("/tmp/kubehatch-worker-ready")
"""The readiness probe's file: ``exec: ["test", "-f", "/tmp/kubehatch-worker-ready"]``."""
CONNECTIONS = 40
"""HTTP connections kept to the API server: one per API call thread and the watch (the
client's default, 5 per CPU, would open and drop connections on a small pod)."""
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Options:
    pool: str
    worker: str
    """module:attribute of the Worker to load."""
    identity: str
    namespace: str | None = None
    """None: the pod's, else the kubeconfig context's, else default."""
    slots: int = 4
    stop_grace: float = 10.0
    shutdown_grace: float = 25.0


def load_config(namespace: str | None) -> tuple[Any, str, bool]:
    """(API client, namespace, in a pod): in-cluster config in a pod, else the kubeconfig
    ($KUBECONFIG as it is now, else ~/.kube/config) and its current context's namespace."""
    from kubernetes import client, config

    configuration = client.Configuration()
    configuration.connection_pool_maxsize = CONNECTIONS
    try:
        config.load_incluster_config(client_configuration=configuration)
        with contextlib.suppress(OSError):
            namespace = namespace or SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return client.ApiClient(configuration), namespace or "default", True
    except config.ConfigException:
        pass
    kubeconfig = os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        _, context = config.list_kube_config_contexts(config_file=kubeconfig)
    except Exception as err:  # a missing, unreadable or malformed kubeconfig
        reason = one_line(str(err)) or type(err).__name__
        raise KubehatchError(
            f"no cluster to talk to ({reason}); set KUBECONFIG to a kubeconfig, or run the "
            "worker in a pod"
        ) from err
    namespace = namespace or (context or {}).get("context", {}).get("namespace") or "default"
    return client.ApiClient(configuration), namespace, False


def set_ready(ready: bool, path: Path | None = None) -> None:
    path = path or READY_FILE
    with contextlib.suppress(OSError):
        if ready:
            path.touch()
        else:
            path.unlink(missing_ok=True)


def serve(options: Options, console: Console | None = None) -> int:
    """Run the worker until it is told to stop; its exit status."""
    console = console or Console()
    api_client, namespace, _ = load_config(options.namespace)
    where = f"namespace {namespace!r}"
    tasks = TaskApi(api_client, namespace, options.pool)
    settings = Settings(
        pool=options.pool,
        identity=options.identity,
        slots=options.slots,
        stop_grace=options.stop_grace,
        shutdown_grace=options.shutdown_grace,
    )
    calls = ThreadPoolExecutor(min(32, 2 * options.slots + 2), thread_name_prefix="api")
    children = Children(options.worker, console)
    loop = Loop(settings, tasks, children, calls, console.say, ready=set_ready)
    stopped = threading.Event()
    console.say(
        f"{options.identity} starting: pool {options.pool!r} in {where}, {options.slots} slots, "
        f"code {options.worker}"
    )
    _on_signals(loop)
    set_ready(False)
    try:
        children.start(loop.post)
        watch = threading.Thread(
            target=follow, args=(tasks, loop.post, stopped, console.say, where), daemon=True
        )
        watch.start()
        return loop.run()
    finally:
        stopped.set()
        set_ready(False)
        children.close()
        calls.shutdown(wait=False, cancel_futures=True)


def _on_signals(loop: Loop) -> None:
    """SIGTERM or Ctrl-C: shut down gracefully; a second one: stop the steps now."""
    told: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        loop.post(Shutdown(now=bool(told)))
        told.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
