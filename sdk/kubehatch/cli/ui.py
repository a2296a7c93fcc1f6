"""``kubehatch ui``: the web dashboard, served on localhost with your kubeconfig.

Every request acts with your kubeconfig's credentials, so what you may see and do is what
your RBAC allows (a denied action shows the API server's reason). ``--auth token`` is the
chart's in-cluster mode: each request's own bearer token, never the server's.
"""

from __future__ import annotations

import argparse
import sys

from kubehatch.cli._common import NAMESPACE, arg, arguments

NAME = "ui"
HELP = "serve the web dashboard (runs, a live DAG, logs, actions) on localhost"

configure = arguments(
    arg("--port", type=int, default=8765, help="port to listen on (0: any free port)"),
    arg("--address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"),
    NAMESPACE,
    arg(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="show every namespace (that your rights let you list)",
    ),
    arg("--context", help="the kubeconfig context to use (default: the current one)"),
    arg(
        "--auth",
        choices=["kubeconfig", "token"],
        default="kubeconfig",
        help="kubeconfig: your credentials (default); token: each request's bearer token "
        "(in a cluster: the chart's mode)",
    ),
    arg("--open", action="store_true", help="open the dashboard in a browser"),
)


def run(args: argparse.Namespace) -> int:
    from kubehatch.ui.access import KubeconfigAccess, TokenAccess
    from kubehatch.ui.server import make_server

    access: KubeconfigAccess | TokenAccess
    access = TokenAccess() if args.auth == "token" else KubeconfigAccess(args.context)
    if args.namespace:
        access.namespace = args.namespace
    server = make_server(access, args.address, args.port, all_namespaces=args.all_namespaces)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    print(f"kubehatch ui: serving {url} (Ctrl-C stops)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        print("kubehatch ui: stopped", file=sys.stderr)
    return 0
