"""The naming rule of kubehatch._naming, case by case."""

import functools
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from kubehatch._naming import (
    DNS_LABEL_PATTERN,
    MAX_NAME_LENGTH,
    dedupe,
    dns_label_error,
    step_name_for,
    to_dns_label,
    workflow_name_for,
)
from kubehatch.api import fields


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


def test_the_dns_label_rule_is_the_apis() -> None:
    assert DNS_LABEL_PATTERN == fields.DNS_LABEL_PATTERN
    assert dns_label_error("x" * MAX_NAME_LENGTH) is None
    assert dns_label_error("x" * (MAX_NAME_LENGTH + 1)) is not None


@pytest.mark.parametrize(
    "name",
    ["a", "step-one", "s3", "x" * 63, "x" * 64, "", "Step", "-a", "a-", "a.b", "a\n", "é", "a b",
     b"bytes-name", 12, None],
)  # fmt: skip
def test_dns_label_errors_are_the_api_types_own(name: Any) -> None:
    """Good names are told without pydantic; the verdict and the error are the API type's."""
    try:
        TypeAdapter(fields.DnsLabel).validate_python(name)
    except ValidationError as error:
        expected = error.errors()[0]
        found = dns_label_error(name)
        assert found is not None
        keys = ("type", "loc", "msg", "input")
        assert [found[key] for key in keys] == [expected[key] for key in keys]
    else:
        assert dns_label_error(name) is None
