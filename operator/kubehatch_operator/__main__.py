"""`python -m kubehatch_operator`: run the operator (a thin wrapper around `kopf run`)."""

from __future__ import annotations

import sys

import kopf.cli


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(
        a in ("-A", "--all-namespaces") or a.startswith(("-n", "--namespace")) for a in args
    ):
        args.append("--all-namespaces")
    sys.argv = ["kopf", "run", "-m", "kubehatch_operator.handlers", *args]
    kopf.cli.main()


if __name__ == "__main__":
    main()
