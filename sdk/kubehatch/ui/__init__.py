"""The web dashboard: ``kubehatch ui`` (and the chart's optional in-cluster Deployment).

A small HTTP server of the standard library that serves static pages (``static/``: plain
HTML, CSS and JavaScript modules, no build step) and a JSON API over the Kubernetes API:

- :mod:`.views`: what the pages show, shaped from the raw objects (run and workflow
  summaries, next cron times, filters) -- pure functions;
- :mod:`.backend`: the reads and actions, through the caller's own credentials;
- :mod:`.live`: server-sent events fed by Kubernetes watches (a run, the runs list) and
  followed pod logs;
- :mod:`.access`: whose credentials a request uses -- the kubeconfig's (local) or the
  request's bearer token (in the cluster; never the server's own ServiceAccount);
- :mod:`.server`: the HTTP routes.

The server keeps no state of its own beyond open streams: every request is answered from
the API server with the user's rights, so RBAC applies as it does to ``kubectl``.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).with_name("static")
"""The pages' files, shipped in the package (and the wheel)."""
