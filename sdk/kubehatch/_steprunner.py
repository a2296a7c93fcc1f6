"""What runs inside a step's pod: `kubehatch step`.

The operator starts one pod per step attempt with everything it needs in environment
variables and mounted ConfigMaps. This module imports the worker baked into the image,
builds the step's Context (run input, parents' outputs), runs the action through the
worker's and the service's middleware, and hands the output back as ConfigMaps owned by
the WorkflowRun: one for a small output, compressed or split into parts for a large one
(up to 10 MiB of JSON; see :mod:`kubehatch.api.outputs`), and parents' outputs are read
back the same way. A failure ends up in the pod's termination message, which the
operator copies into the step's status. A WorkerPool's worker runs the very same
:func:`main` in a child process, with the output and the message handed back to the
worker instead (see :mod:`kubehatch._pool`).

Exit codes: 0 success, 1 failure (retried when the step has retries), 3 permanent
failure (never retried: a `PermanentError`, bad input or an output that cannot be
stored, or a parent's output that cannot be read), 143 stopped by SIGTERM (cancelled or
timed out).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kubehatch import _incluster
from kubehatch.api import outputs, spawns, wire
from kubehatch.api.stepenv import StepEnv
from kubehatch.api.wire import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_PERMANENT,
    EXIT_SELF_CANCELLED,
    EXIT_TIMED_OUT,
)
from kubehatch.context import Context
from kubehatch.errors import PermanentError, WorkerLoadError

TERMINATION_LOG = Path("/dev/termination-log")
MAX_OUTPUT_BYTES = outputs.MAX_OUTPUT_BYTES
"""The most JSON a step may return (10 MiB): stored compressed, in parts if need be."""
# The kubelet keeps at most 4096 bytes of a termination message.
MAX_MESSAGE_BYTES = 4096


def build_context(step: StepEnv, cancelled: threading.Event) -> Context:
    """The Context from the mounted input and parent outputs."""
    input_file = Path(step.input_dir, wire.INPUT_KEY)
    workflow_input = json.loads(input_file.read_text()) if input_file.exists() else {}
    return Context(
        workflow_input=workflow_input,
        parent_outputs={p: read_parent_output(step, p) for p in step.parents},
        step_name=step.step,
        workflow_name=step.workflow,
        run_name=step.run,
        retry_count=step.attempt - 1,
        cancelled=cancelled,
        failures=json.loads(step.failures) if step.failures else None,
        additional_metadata=json.loads(step.additional_metadata or "{}"),
        item=json.loads(step.item_value) if step.item_value is not None else None,
        item_index=step.item,
    )


def read_parent_output(step: StepEnv, parent: str) -> Any:
    """A parent's output from the files the operator projects for it (None when it stored
    none): plain JSON, gzip, or parts put back together and checked against their digest.
    Raises OutputCorruptError (permanent) when the parts do not add up."""
    directory = Path(step.parents_dir)

    def read(name: str) -> bytes | None:
        path = directory / name
        return path.read_bytes() if path.exists() else None

    files = {
        key: content
        for key, name in outputs.head_files(parent).items()
        if (content := read(name)) is not None
    }
    return outputs.decode(
        files,
        lambda number: read(outputs.part_file(parent, number)),
        what=f"output of step {parent!r} (a parent of {step.step!r})",
    )


def encode_output(step: StepEnv, output: Any) -> str:
    """The output as JSON, or an OutputTooLargeError (permanent) past MAX_OUTPUT_BYTES,
    naming the step, the size, the limit and what to do instead."""
    text = json.dumps(output, separators=(",", ":"))
    outputs.check_size(step.step, len(text.encode()))
    return text


def store_output(
    step: StepEnv,
    text: str,
    *,
    spawn: bool = False,
    server: _incluster.Server | None = None,
    connect: _incluster.Connect = _incluster.https_connection,
) -> None:
    """Create the output's ConfigMaps with the pod's ServiceAccount (its only right).

    A small output is one ConfigMap; a large one is compressed, and split into parts
    when it needs more than one (see :mod:`kubehatch.api.outputs`): the parts are created
    first and the head ``<job>-output`` last, so that the head means the output is whole.

    With the standard library, not the kubernetes client: importing and setting that up
    costs more CPU than the rest of a short step, in every step pod. A 409 is success:
    this attempt stored it already (before being restarted, or on a retry; compression is
    deterministic, so a deterministic step writes the same parts again). ``server`` and
    ``connect`` are for tests (the pod's own: its ServiceAccount, TLS). A ``spawn``
    request's head is marked, so that the operator reads it (and no other output).
    """
    namespace = urllib.parse.quote(step.namespace, safe="")
    server = server or _incluster.Server.from_pod()
    for body in outputs.configmaps(step, text, spawn=spawn):
        _incluster.create(
            server,
            f"/api/v1/namespaces/{namespace}/configmaps",
            body,
            what=f"ConfigMap {step.namespace}/{body['metadata']['name']}",
            connect=connect,
        )


def failure_message(error: BaseException) -> str:
    """Type, message and the tail of the traceback, within the kubelet's 4 KiB."""
    import traceback  # here: a step that succeeds needs none

    head = f"{type(error).__name__}: {error}"
    tail = "".join(traceback.format_exception(error)[-6:])
    message = f"{head}\n{tail}"
    encoded = message.encode()
    if len(encoded) > MAX_MESSAGE_BYTES:
        keep = MAX_MESSAGE_BYTES - len(head.encode()) - 16
        message = f"{head}\n...\n{encoded[-max(keep, 0) :].decode(errors='ignore')}"
    return message[:MAX_MESSAGE_BYTES]


def _write_termination(message: str) -> None:
    # Outside a pod there is no termination log: the message is on stderr as well.
    with contextlib.suppress(OSError):
        TERMINATION_LOG.write_text(message)


class StoreOutput(Protocol):
    """Where a step's output goes: ConfigMaps in a step pod, the parent in a pool worker."""

    def __call__(self, step: StepEnv, text: str, *, spawn: bool = False) -> None: ...


Report = Callable[[str], None]
"""Where a failure message goes: the termination log in a pod, the parent in a worker."""


class _OutOfTime(BaseException):
    """Raised into the step's code when its timeout runs out.

    A BaseException, like KeyboardInterrupt: a step's ``except Exception`` must not
    swallow its own timeout.
    """


def _start_clock(step: StepEnv, cancelled: threading.Event) -> None:
    """The step's timeout, counted from here: the start of its code, not of its pod."""
    if not step.timeout_seconds:
        return

    def out_of_time(*_: object) -> None:
        cancelled.set()  # ctx.cancelled tells cooperative code to stop
        raise _OutOfTime

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(step.timeout_seconds)


def _cancelled_by_step(report: Report) -> int:
    message = "cancelled by the step itself (ctx.cancel())"
    print(message, file=sys.stderr)
    report(message)
    return EXIT_SELF_CANCELLED


def main(
    env: dict[str, str] | None = None,
    *,
    store: StoreOutput | None = None,
    report: Report | None = None,
) -> int:
    """Run one step attempt; returns the process exit code.

    ``store`` and ``report`` say where the output and a failure message go (by default
    a step pod's: ConfigMaps and the termination log); a pool worker's child hands both
    back to its worker instead, and runs the very same code otherwise.
    """
    store = store_output if store is None else store  # looked up now: tests replace it
    report = _write_termination if report is None else report
    cancelled = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancelled.set())
    step: StepEnv | None = None
    ctx: Context | None = None
    try:
        step = StepEnv.from_env(os.environ if env is None else env)
        _start_clock(step, cancelled)
        from kubehatch._loader import load_worker

        if not step.worker:  # from_env requires it; only a StepEnv made by hand lacks it
            raise WorkerLoadError(f"{wire.ENV_WORKER} is not set: no worker to run the step")
        worker = load_worker(step.worker)
        ctx = build_context(step, cancelled)
        # Not validating the worker's specs: see Worker.resolve_action.
        output = worker.resolve_action(step.action, check_specs=False).run(ctx)
        signal.alarm(0)
        if ctx.cancelled_by_step:
            return _cancelled_by_step(report)
        if step.item is not None and spawns.is_spawn_request(output):
            raise PermanentError(
                f"step {step.step!r}: an item of a forEach step cannot spawn child runs; "
                "spawn them from a step after it, with ctx.spawn_many over the items"
            )
        text = encode_output(step, output)
        if cancelled.is_set():
            report("cancelled: the step received SIGTERM")
            return EXIT_CANCELLED
        store(step, text, spawn=spawns.is_spawn_request(output))
    except _OutOfTime:
        assert step is not None and step.timeout_seconds is not None
        message = f"timed out: the step ran longer than its timeout of {step.timeout_seconds}s"
        print(message, file=sys.stderr)
        report(message)
        return EXIT_TIMED_OUT
    except BaseException as error:
        signal.alarm(0)
        if isinstance(error, KeyboardInterrupt) and not cancelled.is_set():
            raise
        if isinstance(error, SystemExit):
            # Exiting skips the hand-back: with no output stored, children would wait for it.
            error = RuntimeError(f"the step called sys.exit({error.code!r}) instead of returning")
        if ctx is not None and ctx.cancelled_by_step:
            return _cancelled_by_step(report)
        message = failure_message(error)
        print(message, file=sys.stderr)
        report(message)
        if cancelled.is_set():
            return EXIT_CANCELLED
        return EXIT_PERMANENT if isinstance(error, PermanentError) else EXIT_FAILED
    print(f"step {step.step} succeeded ({len(text.encode())} bytes of output)", file=sys.stderr)
    return 0
