"""Registration: what a worker records, and every problem it reports (with its origin)."""

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubehatch import (
    At,
    Backoff,
    Concurrency,
    Context,
    Cron,
    Crons,
    Event,
    Events,
    Fn,
    LimitStrategy,
    Problem,
    RegistrationError,
    Worker,
    WorkflowJob,
)
from kubehatch.api import WorkflowSpec
from kubehatch.concurrency import DEFAULT_STRATEGY


def line() -> int:
    """The caller's line number, to check where problems point."""
    return sys._getframe(1).f_lineno


def step_one(ctx: Context) -> dict[str, str]:
    return {"message": "one"}


def step_two(ctx: Context) -> None:
    return None


def key(ctx: Context) -> str:
    return "k"


def spec_of(worker: Worker, name: str) -> WorkflowSpec:
    worker.check()
    spec = worker.workflow(name).spec
    assert spec is not None
    return spec


def only_problem(worker: Worker) -> Problem:
    problems = worker.problems()
    assert len(problems) == 1, problems
    return problems[0]


def at_line(problem: Problem, number: int) -> bool:
    return problem.origin.endswith(f"test_registration.py:{number}")


# --- what gets recorded ---


def test_a_workflow_job_becomes_a_spec_in_a_service_of_its_name(worker: Worker) -> None:
    one = Fn(step_one)
    worker.register_workflow(
        WorkflowJob(
            name="two-step",
            description="Two steps.",
            on=[Events("a", "b"), Cron("*/5 * * * *"), At(datetime(2030, 1, 1, tzinfo=UTC))],
            timeout=timedelta(minutes=1, seconds=30),
            steps=[one, Fn(step_two).add_parents(one)],
        )
    )
    spec = spec_of(worker, "two-step")
    assert spec.service == "two-step"
    assert spec.image == "img:1"
    assert spec.timeout == "1m30s"
    assert spec.triggers.events == ["a", "b"]
    assert spec.triggers.crons == ["*/5 * * * *"]
    assert spec.triggers.at == [datetime(2030, 1, 1, tzinfo=UTC)]
    assert [(s.name, s.action, s.parents) for s in spec.steps] == [
        ("step-one", "two-step:step-one", []),
        ("step-two", "two-step:step-two", ["step-one"]),
    ]
    assert [s.name for s in worker.services] == ["two-step"]
    assert worker.action_names == ["two-step:step-one", "two-step:step-two"]


def test_a_lone_fn_is_a_one_step_workflow(worker: Worker) -> None:
    worker.register_workflow(Fn(step_one).set_name("post-user-create"))
    worker.register_workflow(Fn(step_two))
    named = spec_of(worker, "post-user-create")
    assert [s.name for s in named.steps] == ["post-user-create"]
    derived = worker.workflow("test-registration-step-two")
    assert derived.spec is not None and derived.spec.steps[0].name == "step-two"


def test_step_options_reach_the_spec(worker: Worker) -> None:
    step = (
        Fn(step_one)
        .set_timeout("30s")
        .set_retries(3, backoff=Backoff(initial="1s", multiplier=3, max="1m"))
        .set_image("other:2")
        .set_resources(requests={"cpu": "100m"}, limits={"memory": "1Gi"})
        .add_env("MODE", "fast")
    )
    worker.register_workflow(
        WorkflowJob(
            name="wf",
            steps=[step],
            image="wf-image:1",
            service_account_name="runner",
            suspend=True,
            ttl_seconds_after_finished=60,
            history_limit=5,
        )
    )
    spec = spec_of(worker, "wf")
    assert spec.image == "wf-image:1"
    assert (spec.service_account_name, spec.suspend) == ("runner", True)
    assert (spec.ttl_seconds_after_finished, spec.history_limit) == (60, 5)
    wire = spec.steps[0].to_dict()
    assert wire["timeout"] == "30s"
    assert wire["retries"] == 3
    assert wire["backoff"] == {"initial": "1s", "multiplier": 3, "max": "1m"}
    assert wire["image"] == "other:2"
    assert wire["resources"] == {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}}
    assert wire["env"] == [{"name": "MODE", "value": "fast"}]


def test_derived_names_that_collide_get_numbered(worker: Worker) -> None:
    def build() -> list[Fn[Any]]:
        return [Fn(lambda ctx: 1), Fn(lambda ctx: 2)]

    first, second = build()
    second.add_parents(first)
    worker.register_workflow(WorkflowJob(name="wf", steps=[first, second]))
    spec = spec_of(worker, "wf")
    assert [(s.name, s.parents) for s in spec.steps] == [
        ("test-derived-names-that-collide-get-numbered-build-lambda", []),
        (
            "test-derived-names-that-collide-get-numbered-build-lambda-2",
            ["test-derived-names-that-collide-get-numbered-build-lambda"],
        ),
    ]


def test_registration_takes_a_snapshot(worker: Worker) -> None:
    step = Fn(step_one).set_resources(limits={"cpu": "1"})
    job = WorkflowJob(name="wf", steps=[step], timeout="1m")
    worker.register_workflow(job)
    step.set_name("renamed").set_retries(9)
    assert step.resources is not None
    step.resources["limits"]["cpu"] = "2"
    job.timeout = "not a duration"
    assert spec_of(worker, "wf").steps[0].name == "step-one"
    assert spec_of(worker, "wf").steps[0].retries == 0
    resources = spec_of(worker, "wf").steps[0].resources
    assert resources is not None and resources.limits == {"cpu": "1"}
    assert spec_of(worker, "wf").timeout == "1m"


def test_specs_are_validated_when_first_asked_for(worker: Worker) -> None:
    """Registering records; the API models check the spec at check(), render, .workflows."""
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one).set_timeout("5 min")]))
    first = worker.workflows
    assert first[0].spec is None
    assert [p.subject for p in first[0].problems] == ["workflow 'wf', step 'step-one', timeout"]
    assert worker.workflows == first and worker.workflows[0] is first[0]  # compiled once
    worker.register_workflow(WorkflowJob(name="wf2", steps=[Fn(step_two)]))
    assert [w.name for w in worker.workflows] == ["wf", "wf2"]
    assert worker.workflows[0] is first[0]


def test_concurrency_with_a_key_function_registers_it_as_an_action(worker: Worker) -> None:
    limit = Concurrency(key).max_runs(2).limit_strategy(LimitStrategy.QUEUE_NEWEST)
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one)], concurrency=limit))
    concurrency = spec_of(worker, "wf").concurrency
    assert concurrency is not None
    assert (concurrency.action, concurrency.max_runs) == ("wf:key", 2)
    assert concurrency.limit_strategy is LimitStrategy.QUEUE_NEWEST
    assert worker.resolve_action("wf:key").invoke(Context()) == "k"
    assert "max_runs=2" in repr(limit)


def test_concurrency_with_an_expression(worker: Worker) -> None:
    limit = Concurrency.expression("input.user_id").limit_strategy("GroupRoundRobin")
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one)], concurrency=limit))
    concurrency = spec_of(worker, "wf").concurrency
    assert concurrency is not None
    assert (concurrency.expression, concurrency.action) == ("input.user_id", None)
    assert concurrency.limit_strategy is LimitStrategy.GROUP_ROUND_ROBIN


def test_the_default_strategy_is_the_apis_default(worker: Worker) -> None:
    """Declared by its value (no API models loaded), read as the enum member."""
    limit = Concurrency(key)
    assert LimitStrategy.CANCEL_IN_PROGRESS.value == DEFAULT_STRATEGY
    assert limit.strategy is LimitStrategy.CANCEL_IN_PROGRESS
    assert repr(limit).endswith("max_runs=1, strategy=CancelInProgress)")
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one)], concurrency=limit))
    concurrency = spec_of(worker, "wf").concurrency
    assert concurrency is not None
    assert concurrency.limit_strategy is LimitStrategy.CANCEL_IN_PROGRESS
    assert "limit_strategy" in concurrency.model_fields_set
    limit.strategy = LimitStrategy.QUEUE_NEWEST
    assert limit.strategy is LimitStrategy.QUEUE_NEWEST


def test_key_function_with_an_explicit_action_name(worker: Worker) -> None:
    limit = Concurrency(key, name="user-key")
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one)], concurrency=limit))
    assert worker.resolve_action("wf:user-key").invoke(Context()) == "k"


def test_services_share_registered_actions(worker: Worker) -> None:
    service = worker.new_service("test")
    assert worker.new_service("test") is service
    returned = service.register_action(step_one, name="step-one")
    assert (returned.action, returned.name) == ("test:step-one", "step-one")
    service.register_workflow(WorkflowJob(name="a", steps=[service.call("step-one")]))
    worker.register_workflow(
        WorkflowJob(name="b", steps=[worker.call("test:step-one"), Fn(step_two)])
    )
    assert spec_of(worker, "a").steps[0].action == "test:step-one"
    assert [s.action for s in spec_of(worker, "b").steps] == ["test:step-one", "b:step-two"]
    assert [w.name for w in service.workflows] == ["a"]
    assert service.action_names == ["test:step-one"]
    assert repr(service) == "Service('test')"


def test_worker_level_actions_name_their_service(worker: Worker) -> None:
    worker.register_action(step_one, name="mail:send")
    assert worker.resolve_action("mail:send").invoke(Context()) == {"message": "one"}


def test_the_same_function_twice_in_one_service_is_not_a_conflict(worker: Worker) -> None:
    service = worker.new_service("svc")
    service.register_workflow(WorkflowJob(name="a", steps=[Fn(step_one)]))
    service.register_workflow(WorkflowJob(name="b", steps=[Fn(step_one)]))
    worker.check()


def test_fn_needs_exactly_one_of_function_and_action() -> None:
    with pytest.raises(TypeError, match="not both"):
        Fn()  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="not both"):
        Fn(step_one, action="a:b")  # type: ignore[call-overload]


def test_triggers_compare_by_value() -> None:
    assert Event("a") == Events("a")
    assert hash(Crons("* * * * *")) == hash(Cron("* * * * *"))
    assert repr(Events("a", "b")) == "Events('a', 'b')"
    assert Event("a") != "a"


# --- problems, each reported where it was written ---


def test_duplicate_step_names(worker: Worker) -> None:
    first = Fn(step_one).set_name("same")
    second = Fn(step_two).set_name("same")
    here = line() - 1
    worker.register_workflow(WorkflowJob(name="wf", steps=[first, second]))
    problem = only_problem(worker)
    assert at_line(problem, here)
    assert problem.subject == "workflow 'wf', step 'same', name"
    assert "is already used by steps[0]" in problem.message


def test_unknown_parent(worker: Worker) -> None:
    step = Fn(step_two).add_parents("step-three")
    here = line() - 1
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one), step]))
    problem = only_problem(worker)
    assert at_line(problem, here)
    assert problem.subject == "workflow 'wf', step 'step-two', parents[0]"
    assert "parent 'step-three' is not a step of this workflow" in problem.message


def test_a_parent_fn_from_another_workflow_is_unknown(worker: Worker) -> None:
    elsewhere = Fn(step_one)
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_two).add_parents(elsewhere)]))
    assert "parent 'step-one' is not a step" in only_problem(worker).message


def test_cycles(worker: Worker) -> None:
    one, two = Fn(step_one), Fn(step_two)
    one.add_parents(two)
    two.add_parents(one)
    worker.register_workflow(WorkflowJob(name="wf", steps=[one, two]))
    assert "cycle ('step-one' -> 'step-two' -> 'step-one'" in only_problem(worker).message


def test_invalid_cron_points_at_the_trigger(worker: Worker) -> None:
    trigger = Cron("every five minutes")
    here = line() - 1
    worker.register_workflow(WorkflowJob(name="wf", on=trigger, steps=[Fn(step_one)]))
    problem = only_problem(worker)
    assert at_line(problem, here)
    assert problem.subject == "workflow 'wf', on (crons)"
    assert "is not a cron schedule" in problem.message


def test_naive_times_need_a_timezone(worker: Worker) -> None:
    worker.register_workflow(
        WorkflowJob(name="wf", on=At(datetime(2030, 1, 1)), steps=[Fn(step_one)])
    )
    assert "tzinfo=UTC" in only_problem(worker).message


def test_empty_triggers_and_non_triggers(worker: Worker) -> None:
    worker.register_workflow(WorkflowJob(name="a", on=Events(), steps=[Fn(step_one)]))
    worker.register_workflow(WorkflowJob(name="b", on="user:created", steps=[Fn(step_one)]))  # type: ignore[arg-type]
    empty, not_trigger = worker.problems()
    assert empty.message == "Events() names nothing"
    assert not_trigger.message == "'user:created' is not a trigger"
    assert not_trigger.fix.startswith("use Event('user:created')")


def test_bad_step_signatures_point_at_the_function(worker: Worker) -> None:
    def two_args(ctx: Context, extra: int) -> None: ...

    def no_args() -> None: ...

    def generator(ctx: Context) -> Any:
        yield 1

    worker.register_workflow(
        WorkflowJob(
            name="wf",
            steps=[Fn(two_args), Fn(no_args), Fn(generator), Fn("not callable")],  # type: ignore[arg-type, call-overload]
        )
    )
    messages = [problem.message for problem in worker.problems()]
    assert messages[0].startswith(
        "test_bad_step_signatures_point_at_the_function.<locals>.two_args"
    )
    assert "cannot be called as step(ctx): missing a required argument: 'extra'" in messages[0]
    assert "cannot be called as step(ctx): too many positional arguments" in messages[1]
    assert "is a generator; return the result instead of yielding it" in messages[2]
    assert messages[3] == "'not callable' is not callable; expected a function like step(ctx)"
    assert at_line(worker.problems()[0], two_args.__code__.co_firstlineno)


def test_bad_concurrency(worker: Worker) -> None:
    def bad_key() -> str:
        return "k"

    cases: list[Any] = [
        Concurrency(),
        Concurrency(key).max_runs(0),
        Concurrency(key).limit_strategy("Bogus"),
        Concurrency.expression("input.a =="),
        Concurrency(bad_key),  # type: ignore[arg-type]
        "my-key",
    ]
    for index, limit in enumerate(cases):
        worker.register_workflow(
            WorkflowJob(name=f"wf{index}", steps=[Fn(step_one)], concurrency=limit)
        )
    messages = [problem.message for problem in worker.problems()]
    assert "set exactly one of expression" in messages[0]
    assert "greater than or equal to 1" in messages[1]
    assert (
        "'CancelInProgress', 'CancelNewest', 'QueueNewest', 'GroupRoundRobin', "
        "'CancelQueuedExceptNewest' or 'CancelQueuedExceptOldest'" in messages[2]
    )
    assert "is not a valid CEL expression" in messages[3]
    assert "cannot be called as key(ctx) -> str" in messages[4]
    assert messages[5] == "'my-key' is not a concurrency limit"
    assert len(messages) == 6


def test_bad_field_values_name_the_field(worker: Worker) -> None:
    worker.register_workflow(
        WorkflowJob(
            name="wf",
            timeout="soon",
            steps=[Fn(step_one).set_timeout("later").set_retries(-1)],
        )
    )
    subjects = sorted(problem.subject for problem in worker.problems())
    assert subjects == [
        "workflow 'wf', step 'step-one', retries",
        "workflow 'wf', step 'step-one', timeout",
        "workflow 'wf', timeout",
    ]


def test_invalid_names(worker: Worker) -> None:
    worker.register_workflow(WorkflowJob(name="Not_Valid", steps=[Fn(step_one)]))
    worker.register_workflow(Fn(step_two).set_name("Bad Step"))
    messages = [problem.message for problem in worker.problems()]
    assert any("'Not_Valid' is not a valid name" in m for m in messages)
    assert any("'Bad Step' is not a valid name" in m for m in messages)
    assert "'Bad_Worker' is not a valid name" in str(Worker("Bad_Worker").problems()[0])


def test_steps_must_be_fns(worker: Worker) -> None:
    worker.register_workflow(WorkflowJob(name="a", steps=[step_one]))  # type: ignore[list-item]
    worker.register_workflow(WorkflowJob(name="b", steps=[]))
    not_fn, nothing_left, empty = worker.problems()
    assert not_fn.fix == "wrap the function: Fn(my_function)"
    assert "at least 1 item" in nothing_left.message
    assert "at least 1 item" in empty.message


def test_parents_must_be_names_or_fns(worker: Worker) -> None:
    worker.register_workflow(WorkflowJob(name="a", steps=[Fn(step_one).add_parents(3)]))  # type: ignore[arg-type]
    assert only_problem(worker).message == "3 is not a step"


def test_register_workflow_rejects_other_things(worker: Worker) -> None:
    worker.register_workflow(step_one)  # type: ignore[arg-type]
    assert "takes a WorkflowJob or an Fn" in only_problem(worker).message


def test_duplicate_workflow_names_across_services(worker: Worker) -> None:
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one)]))
    worker.new_service("other").register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one)]))
    assert "the name is already taken by the workflow at" in only_problem(worker).message


def test_two_functions_under_one_action_conflict(worker: Worker) -> None:
    service = worker.new_service("svc")
    service.register_workflow(WorkflowJob(name="a", steps=[Fn(step_one).set_name("x")]))
    service.register_workflow(WorkflowJob(name="b", steps=[Fn(step_two).set_name("x")]))
    problem = only_problem(worker)
    assert problem.subject == "action 'svc:x'"
    assert problem.fix == "give one of the steps another name with .set_name(...)"


def test_calls_to_unregistered_actions(worker: Worker) -> None:
    call = worker.call("mail:send")
    here = line() - 1
    worker.register_workflow(WorkflowJob(name="wf", steps=[call]))
    problem = only_problem(worker)
    assert at_line(problem, here)
    assert "action 'mail:send' is not registered" in problem.message


def test_worker_actions_need_a_service(worker: Worker) -> None:
    worker.register_action(step_one, name="send")
    assert only_problem(worker).fix == "name it 'service:send'"


def test_bad_actions(worker: Worker) -> None:
    service = worker.new_service("svc")
    service.register_action(step_one, name="Bad Name")
    service.register_action(lambda: None, name="ok")
    first, second = worker.problems()
    assert "'Bad Name' is not a valid name" in first.message
    assert "cannot be called as action(ctx)" in second.message


def test_bad_middleware_points_at_it(worker: Worker) -> None:
    def one_arg(ctx: Context) -> None: ...

    worker.use(one_arg)  # type: ignore[arg-type]
    worker.new_service("svc").use(lambda ctx, next, extra: None)  # type: ignore[arg-type, misc]
    first, second = worker.problems()
    assert first.subject == "worker 'test-worker', middleware"
    assert "cannot be called as middleware(ctx, next)" in first.message
    assert at_line(first, one_arg.__code__.co_firstlineno)
    assert second.subject == "service 'svc', middleware"


def test_a_step_without_any_image() -> None:
    worker = Worker("no-image")
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one)]))
    assert "no image for this step" in only_problem(worker).message


def test_every_problem_is_reported_at_once(worker: Worker) -> None:
    worker.register_workflow(
        WorkflowJob(
            name="wf",
            on=[Cron("bad"), Event("ok")],
            steps=[Fn(step_one).add_parents("ghost"), Fn(step_one).set_name("step-one")],
        )
    )
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(lambda: None)]))  # type: ignore[arg-type, misc]
    with pytest.raises(RegistrationError) as caught:
        worker.check()
    error = caught.value
    assert len(error.problems) == 5
    text = str(error)
    assert text.startswith("5 registration problems:\n  - ")
    assert all("test_registration.py:" in str(problem) for problem in error.problems)


def test_problem_text() -> None:
    assert str(Problem("f.py:3", "workflow 'w'", "bad", "fix it")) == (
        "f.py:3: workflow 'w': bad (fix: fix it)"
    )
    assert str(Problem("f.py:3", "workflow 'w'", "bad")) == "f.py:3: workflow 'w': bad"
    assert str(RegistrationError([Problem("a", "b", "c")])).startswith("1 registration problem:")


def test_lookups(worker: Worker) -> None:
    worker.register_workflow(WorkflowJob(name="wf", steps=[Fn(step_one)]))
    assert worker.workflow("wf").service == "wf"
    assert worker.get_workflow("wf").service == "wf"
    with pytest.raises(KeyError, match="no workflow 'nope' \\(workflows: wf\\)"):
        worker.get_workflow("nope")
    assert repr(worker) == "Worker('test-worker', image='img:1')"
    assert repr(Fn(step_one)) == "Fn('step-one')"


def test_queue_controls_render_into_the_spec() -> None:
    worker = Worker("queues", image="img:1")
    limit = (
        Concurrency.expression("input.tenant")
        .max_runs("input.tier == 'premium' ? 10 : 1")
        .max_runs_total(4)
        .limit_strategy("GroupRoundRobin")
        .queue_timeout(timedelta(minutes=10))
        .shared("tenants")
    )
    worker.register_workflow(
        WorkflowJob(name="rr", steps=[Fn(step_one)], concurrency=limit, default_priority=2)
    )
    spec = worker.workflow("rr").spec
    assert spec is not None and spec.concurrency is not None
    assert spec.default_priority == 2
    assert spec.concurrency.max_runs_expression == "input.tier == 'premium' ? 10 : 1"
    assert (spec.concurrency.max_runs_total, spec.concurrency.queue_timeout) == (4, "10m")
    assert spec.concurrency.limit_strategy.value == "GroupRoundRobin"
    assert spec.concurrency.shared == "tenants"


def test_a_total_with_a_cancelling_strategy_is_a_registration_problem() -> None:
    worker = Worker("queues", image="img:1")
    limit = Concurrency.expression("input.tenant").max_runs_total(2)
    worker.register_workflow(WorkflowJob(name="bad", steps=[Fn(step_one)], concurrency=limit))
    (problem,) = worker.problems()
    assert "maxRunsTotal cannot be used with limitStrategy CancelInProgress" in problem.message


def test_rate_limits_render_into_the_step_and_bad_ones_name_the_step() -> None:
    from kubehatch import RateLimit

    worker = Worker("limited", image="img:1")
    step = Fn(step_one).add_rate_limit(
        RateLimit("openai-api", limit=60, per="minute"),
        RateLimit(dynamic_key="input.user_id", units=2, limit=2, per=timedelta(seconds=10)),
    )
    worker.register_workflow(WorkflowJob(name="limited", steps=[step]))
    spec = worker.workflow("limited").spec
    assert spec is not None
    limits = [limit.to_dict() for limit in spec.steps[0].rate_limits]
    assert limits == [
        {"key": "openai-api", "units": 1, "limit": 60, "duration": "1m"},
        {"keyExpression": "input.user_id", "units": 2, "limit": 2, "duration": "10s"},
    ]
    bad = Worker("bad", image="img:1")
    over = Fn(step_one).add_rate_limit(RateLimit("k", units=5, limit=2, per="second"))
    bad.register_workflow(WorkflowJob(name="over", steps=[over]))
    (problem,) = bad.problems()
    assert "units (5) exceed limit (2)" in problem.message
    assert "step-one" in str(problem)


def test_an_on_failure_step_renders_apart_and_its_action_is_registered() -> None:
    def cleanup(ctx: Context) -> dict:
        return {"errors": ctx.step_run_errors()}

    worker = Worker("hooks", image="img:1")
    worker.register_workflow(
        WorkflowJob(name="hooked", steps=[Fn(step_one)], on_failure=Fn(cleanup).set_name("cleanup"))
    )
    spec = worker.workflow("hooked").spec
    assert spec is not None and spec.on_failure is not None
    assert [s.name for s in spec.steps] == ["step-one"]
    assert (spec.on_failure.name, spec.on_failure.action) == ("cleanup", "hooked:cleanup")
    assert worker.resolve_action("hooked:cleanup") is not None
    clash = Worker("clash", image="img:1")
    clash.register_workflow(
        WorkflowJob(name="clash", steps=[Fn(step_one)], on_failure=Fn(step_one))
    )
    (problem,) = clash.problems()
    assert "is another step's name" in problem.message
