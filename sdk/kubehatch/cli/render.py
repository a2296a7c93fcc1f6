"""``kubehatch render MODULE:WORKER``: print the Workflow resources of a worker."""

from __future__ import annotations

import argparse
import json
import sys

from kubehatch._loader import load_worker
from kubehatch._render import render_yaml, workflow_manifests
from kubehatch.cli._common import arg, arguments

NAME = "render"
HELP = "print the Workflow resources of a worker, for kubectl apply -f -"

configure = arguments(
    arg("worker", metavar="MODULE:WORKER", help="where the Worker is, e.g. myapp.workers:worker"),
    arg("-o", "--output", choices=("yaml", "json"), default="yaml", help="output format"),
    arg("--image", help="use this image for every workflow (e.g. the one just built and loaded)"),
)


def run(args: argparse.Namespace) -> int:
    worker = load_worker(args.worker)
    if args.output == "json":
        manifests = workflow_manifests(worker, worker_ref=args.worker, image=args.image)
        document = {"apiVersion": "v1", "kind": "List", "items": manifests}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(render_yaml(worker, worker_ref=args.worker, image=args.image))
    return 0
