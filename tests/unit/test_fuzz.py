"""Fuzz: random and near-valid objects through parsing, validation and every pure decision.

What the API server lets through reaches the operator: its schema checks shapes and
patterns, not that a duration's number fits a timedelta, nor that a time has a zone
(RFC 3339 date-times with a lower-case ``z``, or none at all, pass the CRD's
``date-time`` format). The promises checked here:

- The API models either parse a body or raise ``pydantic.ValidationError``, nothing else.
- The store's parse helpers (``RunEntry.parse``, ``WorkflowEntry.parse``,
  ``attempt_from_job``) and its ``observe_*`` methods, which the watch handlers call on
  every event, never raise on an object the API server could hold: a bad spec is reported
  through ``problem`` or ``None``, never as an exception that would stop the run for good.
- On anything that parsed, ``decisions.decide``, ``keystep.decide_key``, ``gates.gate``
  and ``admission.admit`` never raise, and what they decide can be applied: the new
  status dumps to a valid WorkflowRunStatus, a merge patch can be computed, and every
  Job they ask for can be built.

Near-valid bodies are valid templates with fields swapped for junk (wrong types, odd
strings, huge numbers, unicode, nested junk), so that most examples get past the first
check and reach the decisions. The search is derandomized (the same examples on every
run) and the cases found so far are pinned with ``@example``.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kubehatch.api import wire
from kubehatch.api.cel import check_expression
from kubehatch.api.workflow import ConcurrencySpec, LimitStrategy, Workflow, WorkflowSpec
from kubehatch.api.workflowrun import WorkflowRun, WorkflowRunStatus
from kubehatch_operator import jobs
from kubehatch_operator.admission import Contender, Policy, admit
from kubehatch_operator.decisions import decide
from kubehatch_operator.entries import RunEntry, WorkflowEntry, attempt_from_job
from kubehatch_operator.gates import gate
from kubehatch_operator.keystep import decide_key
from kubehatch_operator.model import Decision, Gate, Verdict
from kubehatch_operator.patches import merge_patch
from kubehatch_operator.settings import StepSettings
from kubehatch_operator.store import Store

# Building the CEL environment raises the recursion limit; done once here rather than
# inside the first example, which hypothesis would warn about.
check_expression("input.user")

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

NAMESPACE = "ns"
WORKFLOW = "wf"
STEP_NAMES = ["a", "b", "c", "step-one"]
RUN_NAMES = ["r1", "r2", "r3", "r4"]

# --- junk --------------------------------------------------------------------------------
ODD_STRINGS = [
    "",
    " ",
    "a" * 300,
    "ünïcødé-名前",
    "\x00",
    "-1",
    "1e309",
    "null",
    "2030-01-01T00:00:00z",  # lower-case z: the API server's date-time format accepts it
    "2030-01-01T00:00:00",  # no zone: accepted by the CRD's date-time format too
    "2030-01-01",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "2030-01-01T00:00:00+14:00",
    "0s",
    "99999999999999999999h",
    "999999999h",
    "input.user",
    "input.",
    "a:b",
    "Running",
    "Succeeded",
    "concurrency.key",
]
HUGE_INTS = [0, -1, 1, 2**31, 2**63, 2**64 + 1, 10**30, -(10**30)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(ODD_STRINGS),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
DROP = object()
"""A mutation that removes the field instead of replacing it."""


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _mutate(value: Any, mutations: list[tuple[int, Any]]) -> Any:
    """``value`` with each mutation applied at one of its paths: a field replaced by junk,
    an odd string or removed."""
    value = copy.deepcopy(value)
    for index, replacement in mutations:
        paths = _paths(value)
        if not paths:
            return value if replacement is DROP else replacement
        *parents, last = paths[index % len(paths)]
        holder = value
        for part in parents:
            holder = holder[part]
        if replacement is DROP:
            del holder[last]
        else:
            holder[last] = replacement
    return value


def mutated(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values, and the same with a field or two swapped for junk or removed."""
    mutation = st.tuples(
        st.integers(0, 10**6), st.one_of(st.just(DROP), junk, st.sampled_from(ODD_STRINGS))
    )
    return st.builds(_mutate, valid, st.lists(mutation, max_size=2))


def sometimes(valid: st.SearchStrategy[Any], odd: list[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``valid``, now and then one of ``odd`` (values the API server accepts too)."""
    return st.one_of(valid, valid, valid, st.sampled_from(odd))


# --- valid Workflows (with values the CRD accepts and a reader might not expect) ---------
names = st.sampled_from(STEP_NAMES)
durations = sometimes(
    st.sampled_from(["1s", "10s", "30s", "5m", "1h30m", "0s"]),
    ["99999999999999999999h", "999999999h", "0000000000000000000000000000001s"],
)
aware_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
times = sometimes(
    aware_times.map(wire.format_time),
    [
        "2030-01-01T00:00:00z",
        "2030-01-01T00:00:00",
        "2030-01-01T00:00:00.123456789Z",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "2030-01-01T00:00:00+14:00",
    ],
)
backoffs = st.fixed_dictionaries(
    {},
    optional={
        "initial": durations,
        "multiplier": st.integers(1, 10),
        "max": durations,
    },
)
step_specs = st.fixed_dictionaries(
    {"name": names, "action": st.sampled_from(["act", "svc:act", "b"])},
    optional={
        "parents": st.lists(names, max_size=3),
        "timeout": durations,
        "retries": st.integers(0, 100),
        "backoff": backoffs,
        "image": st.sampled_from(["img:2", "x"]),
        "env": st.lists(st.fixed_dictionaries({"name": st.just("K")}), max_size=2),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "requests": st.just({"cpu": "100m", "memory": 1}),
                "limits": st.just({"memory": "1Gi"}),
            },
        ),
    },
)
concurrency_specs = st.one_of(
    st.fixed_dictionaries(
        {"expression": st.sampled_from(["input.user", "input.missing", "1/0", "input.user+1"])},
        optional={
            "maxRuns": sometimes(st.integers(1, 3), [2**63, 10**30]),
            "limitStrategy": st.sampled_from([s.value for s in LimitStrategy]),
            "maxRunsTotal": sometimes(st.integers(1, 3), [0, 2**63]),
            "maxRunsExpression": st.sampled_from(
                ["input.n", "input.user", "2", "0", "1.5", "input.missing"]
            ),
            "queueTimeout": st.sampled_from(["1s", "1h", "nonsense"]),
            "shared": st.sampled_from(["per-user", "Bad Name"]),
        },
    ),
    st.fixed_dictionaries(
        {"action": st.sampled_from(["svc:key", "key"])},
        optional={
            "maxRuns": st.integers(1, 3),
            "limitStrategy": st.sampled_from([s.value for s in LimitStrategy]),
        },
    ),
)


def _dag(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unique step names, each step's parents among the steps before it."""
    out = []
    for i, step in enumerate(steps):
        parents = [p for p in step.get("parents", []) if p in STEP_NAMES[:i]]
        out.append({**step, "name": STEP_NAMES[i], "parents": list(dict.fromkeys(parents))})
    return out


workflow_specs = st.fixed_dictionaries(
    {
        "steps": st.lists(step_specs, min_size=1, max_size=4).map(_dag),
        "image": st.just("img:1"),
        "service": st.just("svc"),
    },
    optional={
        "worker": st.just("pkg.mod:worker"),
        "timeout": durations,
        "concurrency": concurrency_specs,
        "triggers": st.fixed_dictionaries(
            {},
            optional={
                "events": st.lists(st.just("user:created"), max_size=2),
                "crons": st.lists(st.sampled_from(["*/5 * * * *", "@hourly"]), max_size=2),
                "at": st.lists(times, max_size=2),
            },
        ),
        "ttlSecondsAfterFinished": sometimes(st.integers(0, 10**6), [2**63]),
        "historyLimit": st.integers(0, 10),
        "suspend": st.booleans(),
        "description": st.text(max_size=20),
    },
)


def _workflow_body(spec: Any, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": wire.API_VERSION,
        "kind": "Workflow",
        "metadata": {"namespace": NAMESPACE, "name": WORKFLOW, **meta},
        "spec": spec,
    }


workflow_bodies = st.builds(
    _workflow_body,
    mutated(workflow_specs),
    st.fixed_dictionaries(
        {}, optional={"resourceVersion": st.integers(1, 10**6).map(str), "generation": junk}
    ),
)

# --- valid WorkflowRuns, statuses included ------------------------------------------------
step_statuses = st.fixed_dictionaries(
    {},
    optional={
        "phase": st.sampled_from(
            ["Pending", "Running", "Retrying", "Succeeded", "Failed", "Skipped", "TimedOut"]
        ),
        "attempts": st.integers(0, 5),
        "jobName": st.just("r1-a-1"),
        "startedAt": times,
        "finishedAt": times,
        "nextAttemptAt": times,
        "outputConfigMap": st.just("r1-a-1-output"),
        "message": st.text(max_size=10),
    },
)
conditions = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("Succeeded"),
            "status": st.sampled_from(["True", "False", "Unknown"]),
            "reason": st.sampled_from(["Running", "Queued"]),
        },
        optional={"lastTransitionTime": times, "message": st.text(max_size=10)},
    ),
    max_size=1,
)
run_statuses = st.fixed_dictionaries(
    {},
    optional={
        "phase": st.sampled_from(
            ["Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled", "TimedOut"]
        ),
        "workflowSpec": workflow_specs,
        "steps": st.dictionaries(names, step_statuses, max_size=4),
        "startedAt": times,
        "finishedAt": times,
        "concurrencyKey": st.sampled_from(["ada", "bob", ""]),
        "progress": st.sampled_from(["0/1", "1/3"]),
        "conditions": conditions,
        "observedGeneration": st.integers(0, 5),
        "inputConfigMap": st.just("r1-input"),
    },
)
run_specs = st.fixed_dictionaries(
    {"workflowRef": st.just({"name": WORKFLOW})},
    optional={
        "input": st.dictionaries(
            st.sampled_from(["user", "value", "ü"]),
            st.one_of(st.sampled_from(["ada", "bob"]), junk),
            max_size=3,
        ),
        "scheduledAt": times,
        "cancel": st.booleans(),
        "triggeredBy": st.fixed_dictionaries(
            {}, optional={"type": st.just("Event"), "source": st.text(max_size=10)}
        ),
    },
)


def _run_body(
    name: str, spec: Any, status: Any, created: str | None, meta: dict[str, Any]
) -> dict[str, Any]:
    metadata = {"namespace": NAMESPACE, "name": name, "uid": f"uid-{name}", **meta}
    if created is not None:
        metadata["creationTimestamp"] = created
    body: dict[str, Any] = {
        "apiVersion": wire.API_VERSION,
        "kind": "WorkflowRun",
        "metadata": metadata,
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


run_bodies = st.builds(
    _run_body,
    st.sampled_from(RUN_NAMES),
    mutated(run_specs),
    st.one_of(st.none(), mutated(run_statuses)),
    st.one_of(st.none(), aware_times.map(wire.format_time)),
    st.fixed_dictionaries(
        {},
        optional={
            "generation": st.integers(1, 2**40),
            "resourceVersion": st.one_of(st.integers(1, 10**9).map(str), st.just("opaque")),
        },
    ),
)

# --- Jobs, as the API server holds them (only labels and status vary) -------------------
job_conditions = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["SuccessCriteriaMet", "Complete", "FailureTarget", "Failed", "Suspended"]
            ),
            "status": st.sampled_from(["True", "False", "Unknown"]),
        },
        optional={
            "reason": st.sampled_from(["DeadlineExceeded", "BackoffLimitExceeded"]),
            "lastTransitionTime": times,
        },
    ),
    max_size=2,
)


def _job_body(run: str, step: str, attempt: str, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "namespace": NAMESPACE,
            "name": wire.bounded(f"{run}-{step}-{attempt}", wire.MAX_JOB_NAME),
            "labels": {wire.LABEL_STEP: step, wire.LABEL_ATTEMPT: attempt},
            "ownerReferences": [wire.owner_reference("WorkflowRun", run, f"uid-{run}")],
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "status": status,
    }


job_bodies = st.builds(
    _job_body,
    st.sampled_from(RUN_NAMES),
    st.one_of(names, st.just(wire.KEY_STEP), st.sampled_from(["zzz", ""])),
    st.one_of(
        st.integers(1, 4).map(str),
        st.sampled_from(["0", "-1", "x", "", "99", str(2**70)]),
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "conditions": job_conditions,
            "succeeded": st.integers(0, 2),
            "startTime": times,
            "completionTime": times,
        },
    ),
)
nows = aware_times
gates = st.one_of(
    st.none(),
    st.builds(
        Gate,
        st.sampled_from(list(Verdict)),
        st.one_of(st.none(), st.sampled_from(["ada", "bob"])),
        st.text(max_size=10),
    ),
)


# --- checks --------------------------------------------------------------------------------
def _parse_or_validation_error(model: Any, body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError:
        return None


def _check_applicable(decision: Decision, spec: WorkflowSpec | None) -> None:
    """What the reconciler does with a decision can be done: dump, patch, build the Jobs."""
    new = decision.status.to_dict()
    WorkflowRunStatus.model_validate(new)  # the status written back is valid
    merge_patch({}, new)
    if decision.wake_at is not None:
        assert decision.wake_at.tzinfo is not None
        (decision.wake_at - datetime.now(UTC)).total_seconds()
    job_spec = decision.status.workflow_spec or spec
    for start in decision.start:
        assert job_spec is not None
        jobs.step_job(
            namespace=NAMESPACE,
            workflow=WORKFLOW,
            run="r1",
            run_uid="uid-r1",
            spec=job_spec,
            start=start,
            settings=StepSettings(),
        )


NAIVE_SCHEDULE = _run_body(
    "r1", {"workflowRef": {"name": WORKFLOW}, "scheduledAt": "2030-01-01T00:00:00"}, None, None, {}
)
LOWER_Z_SCHEDULE = _run_body(
    "r1", {"workflowRef": {"name": WORKFLOW}, "scheduledAt": "2030-01-01T00:00:00z"}, None, None, {}
)
HUGE_TIMEOUT = {
    "metadata": {"namespace": NAMESPACE, "name": WORKFLOW},
    "spec": {
        "image": "img:1",
        "service": "svc",
        "timeout": "99999999999999999999h",
        "steps": [{"name": "a", "action": "a", "timeout": "99999999999999999999h"}],
    },
}
PLAIN_WORKFLOW = {
    "metadata": {"namespace": NAMESPACE, "name": WORKFLOW},
    "spec": {"image": "img:1", "service": "svc", "steps": [{"name": "a", "action": "a"}]},
}
NEW_RUN = _run_body("r1", {"workflowRef": {"name": WORKFLOW}}, None, None, {})
# A step with many retries and a steep backoff, failed for the 20th time.
STEEP_BACKOFF = {
    "metadata": {"namespace": NAMESPACE, "name": WORKFLOW},
    "spec": {
        "image": "img:1",
        "service": "svc",
        "steps": [
            {"name": "a", "action": "a", "retries": 50, "backoff": {"multiplier": 10}},
        ],
    },
}
FAILED_20TH = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "namespace": NAMESPACE,
        "name": "r1-a-20",
        "labels": {wire.LABEL_STEP: "a", wire.LABEL_ATTEMPT: "20"},
        "ownerReferences": [wire.owner_reference("WorkflowRun", "r1", "uid-r1")],
    },
    "status": {
        "conditions": [
            {"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]
    },
}


@FUZZ
@given(body=st.one_of(workflow_bodies, junk))
@example(body=HUGE_TIMEOUT)
def test_workflow_bodies_parse_or_are_reported(body: Any) -> None:
    _parse_or_validation_error(Workflow, body)
    _parse_or_validation_error(WorkflowSpec, body.get("spec") if isinstance(body, dict) else body)
    if not (isinstance(body, dict) and isinstance(body.get("metadata"), dict)):
        return  # the store only ever sees objects with metadata
    entry = WorkflowEntry.parse(body)
    assert (entry.spec is None) == (entry.problem is not None)
    assert isinstance(entry.for_decisions, WorkflowSpec | str)
    Store().observe_workflow(body)


@FUZZ
@given(body=st.one_of(run_bodies, junk))
@example(body=NAIVE_SCHEDULE)
@example(body=LOWER_Z_SCHEDULE)
def test_run_bodies_parse_or_are_reported(body: Any) -> None:
    _parse_or_validation_error(WorkflowRun, body)
    if not (isinstance(body, dict) and isinstance(body.get("metadata"), dict)):
        return
    entry = RunEntry.parse(body)
    assert (entry.run is None) == (entry.problem is not None)
    assert entry.created.tzinfo is not None
    store = Store()
    store.observe_run(body)
    store.observe_run(body, deleted=True)


@FUZZ
@given(body=job_bodies)
@example(body=FAILED_20TH)
def test_job_bodies_become_attempts_or_none(body: dict[str, Any]) -> None:
    attempt = attempt_from_job(body)
    if attempt is not None:
        assert attempt.started_at is None or attempt.started_at.tzinfo is not None
    store = Store()
    store.observe_run(NEW_RUN)
    store.observe_job(body)
    store.observe_job(body, deleted=True)


@FUZZ
@given(
    run_body=run_bodies,
    workflow_body=st.one_of(st.none(), workflow_bodies),
    job_list=st.lists(job_bodies, max_size=4),
    now=nows,
    verdict=gates,
)
@example(
    run_body=NAIVE_SCHEDULE,
    workflow_body=PLAIN_WORKFLOW,
    job_list=[],
    now=datetime(2026, 1, 1, tzinfo=UTC),
    verdict=None,
)
@example(
    run_body=NEW_RUN,
    workflow_body=HUGE_TIMEOUT,
    job_list=[],
    now=datetime(2026, 1, 1, tzinfo=UTC),
    verdict=None,
)
@example(
    run_body=NEW_RUN,
    workflow_body=STEEP_BACKOFF,
    job_list=[FAILED_20TH],
    now=datetime(2026, 1, 1, tzinfo=UTC),
    verdict=None,
)
def test_decide_never_raises_on_parsed_input(
    run_body: dict[str, Any],
    workflow_body: dict[str, Any] | None,
    job_list: list[dict[str, Any]],
    now: datetime,
    verdict: Gate | None,
) -> None:
    entry = RunEntry.parse(run_body)
    if entry.run is None:
        return
    workflow = None if workflow_body is None else WorkflowEntry.parse(workflow_body).for_decisions
    attempts = [a for a in map(attempt_from_job, job_list) if a is not None]
    # Attempts of one Job name are one attempt: the store keys them by name.
    by_name = {a.job_name: a for a in attempts}
    run = entry.run
    decision = decide(run, workflow, list(by_name.values()), now, verdict)
    _check_applicable(decision, workflow if isinstance(workflow, WorkflowSpec) else None)
    # Deciding again on the decision's own status (as after the status write) works too.
    again = dataclasses.replace(run, status=decision.status)
    _check_applicable(
        decide(again, workflow, list(by_name.values()), now, verdict),
        workflow if isinstance(workflow, WorkflowSpec) else None,
    )
    spec = run.status.workflow_spec or (workflow if isinstance(workflow, WorkflowSpec) else None)
    if spec is not None and spec.concurrency is not None and spec.concurrency.action is not None:
        for key_output in (None, "ada", ""):
            keyed = decide_key(run, spec, list(by_name.values()), key_output, now)
            _check_applicable(keyed, spec)


@FUZZ
@given(
    run_list=st.lists(run_bodies, min_size=1, max_size=5),
    concurrency=concurrency_specs,
    now=nows,
    holding=st.sets(st.sampled_from(RUN_NAMES)),
)
def test_gate_never_raises_and_its_verdicts_are_disjoint(
    run_list: list[dict[str, Any]], concurrency: dict[str, Any], now: datetime, holding: set[str]
) -> None:
    limit = _parse_or_validation_error(ConcurrencySpec, concurrency)
    if limit is None:
        return
    steps = [{"name": "a", "action": "a"}]
    spec = WorkflowSpec.model_validate(
        {"image": "img:1", "service": "svc", "steps": steps, "concurrency": limit.to_dict()}
    )
    entries = {RunEntry.parse(body).key: RunEntry.parse(body) for body in run_list}
    live = {(NAMESPACE, name) for name in holding}  # runs whose Jobs still run
    for key in entries:
        verdict, admission = gate(key[1], list(entries.values()), spec, now, live)
        assert verdict.verdict in set(Verdict)
        chosen = [*admission.start, *admission.queue, *admission.cancel]
        assert len(chosen) == len(set(chosen)), admission


contenders = st.lists(
    st.builds(
        Contender,
        st.sampled_from([*RUN_NAMES, "r5", "r6"]),
        st.sampled_from(["ada", "bob", "ü", ""]),
        nows,
        st.booleans(),
        arrival=st.integers(-(2**63), 2**63),
        leaving=st.booleans(),
        priority=st.one_of(st.none(), st.integers(1, 3)),
        limit=st.one_of(st.none(), st.integers(1, 4), st.just(2**63)),
        started_at=st.one_of(st.none(), nows),
    ),
    max_size=8,
    unique_by=lambda c: c.name,
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    strategy = draw(st.sampled_from(list(LimitStrategy)))
    sizes = st.one_of(st.integers(1, 4), st.sampled_from([2**63, 10**30]))
    return Policy(
        strategy,
        draw(sizes),
        draw(st.one_of(st.none(), sizes)) if strategy.queues else None,
        draw(st.integers(1, 3)),
    )


@FUZZ
@given(
    runs=contenders,
    policy=policies(),
    served=st.one_of(st.none(), st.sampled_from(["ada", "bob", "ü", "", "zed"])),
)
def test_admit_partitions_the_waiting_runs_within_the_limit(
    runs: list[Contender], policy: Policy, served: str | None
) -> None:
    result = admit(runs, policy, served)
    chosen = [*result.start, *result.queue, *result.cancel]
    assert len(chosen) == len(set(chosen)), result
    waiting = {r.name for r in runs if not r.running and not r.leaving}
    assert set(result.start) | set(result.queue) <= waiting
    assert waiting <= set(chosen), result  # every waiting run has its verdict
    running = {r.name for r in runs if r.running and not r.leaving}
    for key in {r.key for r in runs}:
        mine = [r for r in runs if r.key == key]
        limits = [r for r in mine if not r.leaving and r.limit is not None]
        limit = max(limits, key=lambda r: r.rank).limit if limits else policy.max_runs
        starting = sum(1 for r in mine if r.name in result.start)
        if policy.strategy is LimitStrategy.CANCEL_IN_PROGRESS:
            # Running runs are cancelled to make room: the limit holds once they stop.
            kept = sum(1 for r in mine if r.name in running and r.name not in result.cancel)
            assert starting + kept <= limit  # type: ignore[operator]
        else:
            held = sum(r.running for r in mine)
            assert starting <= max(limit - held, 0)  # type: ignore[operator]
    if policy.strategy is LimitStrategy.CANCEL_IN_PROGRESS:
        assert set(result.cancel) <= waiting | running
        assert result.queue == []
        return
    assert set(result.cancel) <= waiting
    if result.start and policy.strategy.queues:
        by_name = {r.name: r for r in runs}
        assert result.served == by_name[result.start[-1]].key
    if policy.max_runs_total is not None:
        held = sum(r.running for r in runs)
        assert len(result.start) <= max(policy.max_runs_total - held, 0)


def test_the_fuzz_examples_reach_the_decisions() -> None:
    """The near-valid generators are near enough: a good share of runs parse and start."""
    parsed = started = 0

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(run_body=run_bodies, workflow_body=workflow_bodies)
    def count(run_body: dict[str, Any], workflow_body: dict[str, Any]) -> None:
        nonlocal parsed, started
        entry = RunEntry.parse(run_body)
        workflow = WorkflowEntry.parse(workflow_body).spec
        if entry.run is None or workflow is None:
            return
        parsed += 1
        try:
            decision = decide(entry.run, workflow, [], datetime(2026, 1, 1, tzinfo=UTC))
        except Exception:
            return  # reported by test_decide_never_raises_on_parsed_input
        started += bool(decision.start)

    count()
    assert parsed >= 15, parsed
    assert started >= 5, started
