"""``kubehatch approve RUN STEP [--reject] [--comment TEXT]``: answer a step that waits
for approval."""

from __future__ import annotations

import argparse

from kubehatch.cli._common import NAMESPACE, RUN, arg, arguments, client

NAME = "approve"
HELP = "approve (or --reject) a step that waits for approval, in your own name"

configure = arguments(
    RUN,
    arg("step", help="the step that waits for approval (kubehatch describe RUN shows it)"),
    arg("--reject", action="store_true", help="reject: the step fails, saying who and why"),
    arg("--comment", "-m", help="why (at most 1024 characters); in the step's output or message"),
    NAMESPACE,
    epilog=(
        "The answer is a WorkflowApproval whose approver is you (kubectl auth whoami); "
        "who may answer is who may create workflowapprovals in the namespace. "
        "An answer is final; a new answer to a step still waiting replaces it."
    ),
)


def run(args: argparse.Namespace) -> int:
    api = client(args)
    name = api.approve(args.run, args.step, approved=not args.reject, comment=args.comment)
    verb = "rejected" if args.reject else "approved"
    print(f"workflowapproval/{name} created: step {args.step} of run {args.run} {verb}")
    return 0
