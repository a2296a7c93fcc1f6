"""``kubehatch webhook serve``: the HTTP receiver of signed webhooks (see kubehatch.webhooks).

What the chart's webhooks Deployment runs; also usable on a workstation, with the current
kubeconfig, to try a configuration::

    kubehatch webhook serve --config webhooks.yaml --port 8080 -n my-namespace
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from kubehatch.cli._common import arg, arguments

NAME = "webhook"
HELP = "receive signed webhooks (GitHub, Stripe, HMAC) and turn them into events"
TRACEBACKS = True  # in a pod, where nobody can rerun it with --debug
CONFIG_ENV = "KUBEHATCH_WEBHOOKS_CONFIG"

configure_serve = arguments(
    arg(
        "--config",
        default=os.environ.get(CONFIG_ENV),
        help=f"the sources, a YAML or JSON file (default: ${CONFIG_ENV})",
    ),
    arg("--address", default="0.0.0.0", help="address to listen on (default: all)"),
    arg("--port", type=int, default=8080, help="port to listen on (default: 8080; 0: any)"),
    arg(
        "-n",
        "--namespace",
        help="where the signing Secrets are, and the sources' events go unless they say "
        "otherwise (default: the pod's, or the current kubeconfig context's)",
    ),
    arg("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
)


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    configure_serve(
        actions.add_parser(
            "serve",
            help="serve POST /webhooks/<source> and GET /healthz",
            description="Serve POST /webhooks/<source> (a signed request becomes a "
            "WorkflowEvent) and GET /healthz, until SIGTERM.",
        )
    )


def run(args: argparse.Namespace) -> int:
    from kubehatch.errors import KubehatchError
    from kubehatch.webhooks.cluster import Cluster
    from kubehatch.webhooks.config import load_config
    from kubehatch.webhooks.server import Receiver, WebhookServer, serve

    if not args.config:
        raise KubehatchError(f"name the sources' file: --config FILE (or ${CONFIG_ENV})")
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = load_config(Path(args.config))
    cluster = Cluster(args.namespace)
    cluster.check_secrets([source.secret for source in config.sources])
    receiver = Receiver(config, cluster.secret, cluster.push)
    try:
        server = WebhookServer((args.address, args.port), receiver)
    except OSError as err:
        raise KubehatchError(
            f"cannot listen on {args.address}:{args.port}: {err.strerror}"
        ) from err
    serve(server)
    return 0
