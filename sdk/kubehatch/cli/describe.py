"""``kubehatch describe RUN``: the run's DAG with each step's state."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kubehatch.api import wire
from kubehatch.api.graph import topological_order
from kubehatch.api.step import StepSpec
from kubehatch.api.workflowrun import StepPhase, StepStatus, WorkflowRun
from kubehatch.cli._common import NAMESPACE, RUN, arguments, client, since, span

NAME = "describe"
HELP = "show a run: its phase, and each step of its DAG with state, attempts and message"

SYMBOLS = {
    "Pending": "·", "Running": "▶", "Retrying": "↻", "Succeeded": "✔", "Failed": "✘",
    "Skipped": "-", "Cancelled": "■", "TimedOut": "⧗",
}  # fmt: skip


configure = arguments(RUN, NAMESPACE)


def describe(run: WorkflowRun, children: Sequence[WorkflowRun] = ()) -> str:
    """The run's DAG; ``children``: its child runs, listed under the steps that spawned them."""
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
    if s.retries:
        lines.append(f"Retried:    {s.retries} time(s)")
    if s.workflow_spec is None:
        return "\n".join(lines)
    lines.append("Steps:")
    spec = s.workflow_spec
    parents = {step.name: step.parents for step in spec.steps}
    names = topological_order([(step.name, step.parents) for step in spec.steps])
    hooks = {step.name: f"  ({hook.attribute.replace('_', ' ')})" for hook, step in spec.hooks}
    names.extend(hooks)
    specs = {step.name: step for step in spec.all_steps}
    for name in names:
        st = s.steps.get(name)
        phase = st.phase.value if st else "Pending"
        if name in parents:
            after = f"  ← {', '.join(parents[name])}" if parents[name] else ""
        else:
            after = hooks[name]
        tries = f"  attempts {st.attempts}" if st and st.attempts > 1 else ""
        took = ""
        if st and st.started_at and st.finished_at:
            took = f"  {span(st.finished_at - st.started_at)}"
        lines.append(f"  {SYMBOLS.get(phase, '?')} {name:<24} {phase:<10}{took}{tries}{after}")
        if st and st.items is not None:
            i = st.items
            lines.append(
                f"      items {i.succeeded}/{i.total} succeeded, {i.failed} failed, "
                f"{i.running} running"
            )
        if (asked := _approval(run.name, specs.get(name), st)) is not None:
            lines.append(f"      {asked}")
        elif st and st.message and phase != "Succeeded":
            for text in st.message.splitlines()[:6]:
                lines.append(f"      {text}")
        lines.extend(_children(name, st, children))
    return "\n".join(lines)


def _approval(run: str, step: StepSpec | None, status: StepStatus | None) -> str | None:
    """An approval step's question while it waits, its answer once approved."""
    if step is None or step.wait is None or step.wait.approval is None or status is None:
        return None
    if status.phase is StepPhase.RUNNING:
        asked = step.wait.approval.message or "(no message)"
        return f"waiting for approval: {asked}  (kubehatch approve {run} {step.name})"
    return status.message if status.phase is StepPhase.SUCCEEDED else None


def _children(step: str, status: StepStatus | None, children: Sequence[WorkflowRun]) -> list[str]:
    """The step's child runs (ctx.spawn): name, workflow, phase."""
    if status is None or not status.child_runs:
        return []
    label = wire.label_value(step)
    mine = [
        c for c in children if c.metadata.get("labels", {}).get(wire.LABEL_PARENT_STEP) == label
    ]
    lines = [f"      child runs: {len(mine)} of {status.child_runs}"]
    for child in mine:
        phase = child.status.phase.value if child.status and child.status.phase else "Pending"
        symbol = SYMBOLS.get(phase, "?")
        lines.append(
            f"        {symbol} {child.name:<40} {child.spec.workflow_ref.name:<20} {phase}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    api = client(args)
    found = api.get_run(args.run)
    steps = found.status.steps.values() if found.status else ()
    children = api.list_children(args.run) if any(st.child_runs for st in steps) else []
    print(describe(found, children))
    return 0
