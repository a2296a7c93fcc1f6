"""``kubehatch describe RUN``: the run's DAG with each step's state."""

from __future__ import annotations

import argparse

from kubehatch.api.graph import topological_order
from kubehatch.api.workflowrun import WorkflowRun
from kubehatch.cli._common import NAMESPACE, RUN, arguments, client, since, span

NAME = "describe"
HELP = "show a run: its phase, and each step of its DAG with state, attempts and message"

SYMBOLS = {
    "Pending": "·", "Running": "▶", "Retrying": "↻", "Succeeded": "✔", "Failed": "✘",
    "Skipped": "-", "Cancelled": "■", "TimedOut": "⧗",
}  # fmt: skip


configure = arguments(RUN, NAMESPACE)


def describe(run: WorkflowRun) -> str:
    s = run.status
    lines = [f"Name:       {run.name}", f"Workflow:   {run.spec.workflow_ref.name}"]
    trigger = run.spec.triggered_by
    lines.append(
        f"Trigger:    {trigger.type.value}" + (f" ({trigger.source})" if trigger.source else "")
    )
    if s is None or s.phase is None:
        lines.append("Phase:      Pending (not seen by the operator yet)")
        return "\n".join(lines)
    lines.append(f"Phase:      {s.phase.value}   progress {s.progress or '-'}")
    if s.started_at:
        took = (
            span(s.finished_at - s.started_at)
            if s.finished_at
            else f"running for {since(s.started_at)}"
        )
        lines.append(f"Started:    {s.started_at.isoformat()}  ({took})")
    condition = next((c for c in s.conditions if c.type == "Succeeded"), None)
    if condition and condition.message:
        lines.append(f"Message:    {condition.message}")
    if s.workflow_spec is None:
        return "\n".join(lines)
    lines.append("Steps:")
    spec = s.workflow_spec
    parents = {step.name: step.parents for step in spec.steps}
    names = topological_order([(step.name, step.parents) for step in spec.steps])
    if spec.on_failure is not None:
        names.append(spec.on_failure.name)
    for name in names:
        st = s.steps.get(name)
        phase = st.phase.value if st else "Pending"
        if name in parents:
            after = f"  ← {', '.join(parents[name])}" if parents[name] else ""
        else:
            after = "  (on failure)"
        tries = f"  attempts {st.attempts}" if st and st.attempts > 1 else ""
        took = ""
        if st and st.started_at and st.finished_at:
            took = f"  {span(st.finished_at - st.started_at)}"
        lines.append(f"  {SYMBOLS.get(phase, '?')} {name:<24} {phase:<10}{took}{tries}{after}")
        if st and st.message and phase not in ("Succeeded", "Running"):
            for text in st.message.splitlines()[:6]:
                lines.append(f"      {text}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(describe(client(args).get_run(args.run)))
    return 0
