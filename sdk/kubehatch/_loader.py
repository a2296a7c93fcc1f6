"""Find a Worker from a "module:attribute" reference (as ``kubehatch render`` takes)."""

from __future__ import annotations

import importlib
import os
import sys

from kubehatch.errors import WorkerLoadError
from kubehatch.worker import Worker

DEFAULT_ATTRIBUTE = "worker"


def load_worker(reference: str, *, cwd_on_path: bool = True) -> Worker:
    """Import ``module`` and return its ``attribute`` (default ``worker``).

    ``reference`` is "package.module:attribute", where the attribute may be dotted
    ("module:app.worker"). With ``cwd_on_path`` the working directory is put first on
    ``sys.path`` (as ``python -m`` does) so that a project's modules import without
    being installed.
    """
    module_name, _, attribute = reference.partition(":")
    attribute = attribute or DEFAULT_ATTRIBUTE
    if not module_name:
        raise WorkerLoadError(f"{reference!r} names no module; write 'package.module:worker'")
    if cwd_on_path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as error:
        if error.name and module_name.startswith(error.name):  # the module itself is missing
            raise WorkerLoadError(
                f"cannot import {module_name!r} ({error}); check the name and that it is "
                "on the Python path (run from the project directory or install it)"
            ) from error
        raise  # an import inside the module failed: the traceback shows where
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise WorkerLoadError(
                f"{module_name!r} has no attribute {attribute!r}; "
                f"write 'module:name' with the name of the Worker variable"
            )
        target = getattr(target, part)
    if not isinstance(target, Worker):
        raise WorkerLoadError(
            f"{reference!r} is a {type(target).__name__}, not a Worker; point at the "
            "kubehatch.Worker instance"
        )
    return target
