"""The naming rule of kubehatch._naming, case by case."""

import functools

from kubehatch._naming import (
    MAX_NAME_LENGTH,
    dedupe,
    step_name_for,
    to_dns_label,
    workflow_name_for,
)


def step_one(ctx: object) -> None: ...


class Handlers:
    def on_signup(self, ctx: object) -> None: ...


class CallableStep:
    def __call__(self, ctx: object) -> None: ...


def build() -> tuple[object, object]:
    def inner(ctx: object) -> None: ...

    return inner, lambda ctx: None


def test_to_dns_label() -> None:
    assert to_dns_label("Step_One") == "step-one"
    assert to_dns_label("a..b__c") == "a-b-c"
    assert to_dns_label("--x--") == "x"
    assert to_dns_label("___") == "fn"


def test_long_names_are_cut_and_keep_a_hash_so_they_stay_unique() -> None:
    first, second = to_dns_label("a" * 80 + "1"), to_dns_label("a" * 80 + "2")
    assert len(first) == MAX_NAME_LENGTH and len(second) == MAX_NAME_LENGTH
    assert first != second
    assert first.startswith("a" * 50)


def test_step_names_come_from_the_qualified_name() -> None:
    inner, anonymous = build()
    assert step_name_for(step_one) == "step-one"
    assert step_name_for(Handlers().on_signup) == "handlers-on-signup"
    assert step_name_for(inner) == "build-inner"
    assert step_name_for(anonymous) == "build-lambda"
    assert step_name_for(CallableStep()) == "callablestep"
    assert step_name_for(functools.partial(step_one)) == "step-one"


def test_workflow_names_add_the_module() -> None:
    assert workflow_name_for(step_one) == "test-naming-step-one"
    assert workflow_name_for(build()[1]) == "test-naming-build-lambda"


def test_scripts_use_the_file_name_not_main() -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    code = compile("def job(ctx):\n    pass\n", "/somewhere/nightly_report.py", "exec")
    exec(code, namespace)
    assert workflow_name_for(namespace["job"]) == "nightly-report-job"  # type: ignore[arg-type]


def test_dedupe_suffixes_repeats_in_order() -> None:
    assert dedupe(["a", "b", "a", "a"]) == ["a", "b", "a-2", "a-3"]
