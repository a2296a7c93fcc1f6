"""Rewrite (or, with ``--check``, verify) the YAML rendered beside each example.

Usage: ``python -m examples.regenerate [--check]``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from kubehatch import render_yaml

HERE = Path(__file__).parent


def example_names() -> list[str]:
    """The example modules (ex01_..., ex02_...), in order."""
    return sorted(info.name for info in pkgutil.iter_modules([str(HERE)]) if info.name[:2] == "ex")


def rendered(name: str) -> str:
    """What ``kubehatch render examples.<name>:worker`` prints."""
    reference = f"examples.{name}:worker"
    worker = importlib.import_module(f"examples.{name}").worker
    return render_yaml(worker, worker_ref=reference)


def yaml_path(name: str) -> Path:
    return HERE / f"{name}.yaml"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in example_names():
        text = rendered(name)
        path = yaml_path(name)
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
    for path in stale:
        print(f"stale: {path} (run: python -m examples.regenerate)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
