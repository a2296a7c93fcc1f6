"""`python -m kubehatch_operator [kopf run options]`: run the operator.

A thin wrapper around `kopf run` that adds two defaults a Deployment needs:

- Peering priority. kopf pauses every peer of equal priority, so replicas of one
  Deployment would all freeze. Unless --priority or --standalone is given, the earlier
  a replica started, the higher its priority: the oldest works, the others stand by,
  and a new pod never pre-empts a working one.
- Namespace scanning. With only exact --namespace names (no globs), kopf needs no
  cluster-wide list of namespaces or CRDs, which namespaced RBAC does not grant; it
  would retry those 403s for a minute before watching anything.
"""

from __future__ import annotations

import os
import sys
import time

import kopf.cli

GLOB = set("*?[]!")


def _namespaces(args: list[str]) -> list[str]:
    found = []
    for i, arg in enumerate(args):
        if arg in ("-n", "--namespace") and i + 1 < len(args):
            found.append(args[i + 1])
        elif arg.startswith("--namespace="):
            found.append(arg.split("=", 1)[1])
    return found


def kopf_args(args: list[str], now_ns: int | None = None) -> list[str]:
    """The `kopf run` command line for the operator's own arguments."""
    args = list(args)
    namespaces = _namespaces(args)
    if not namespaces and not any(a in ("-A", "--all-namespaces") for a in args):
        args.append("--all-namespaces")
    if not any(a == "--standalone" or a.startswith("--priority") for a in args):
        args.append(f"--priority={-((now_ns or time.time_ns()) // 1000)}")
    exact = bool(namespaces) and not any(GLOB & set(ns) for ns in namespaces)
    os.environ["KUBEHATCH_SCAN_CLUSTER"] = "false" if exact else "true"
    # What the operator lists itself at start-up (before admitting any run) and to resync.
    os.environ["KUBEHATCH_WATCH_NAMESPACES"] = ",".join(namespaces)
    return ["kopf", "run", "-m", "kubehatch_operator.handlers", *args]


def main(argv: list[str] | None = None) -> None:
    sys.argv = kopf_args(list(sys.argv[1:] if argv is None else argv))
    kopf.cli.main()


if __name__ == "__main__":
    main()
