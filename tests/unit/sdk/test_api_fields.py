"""Each constrained API type: what it accepts, and the error for what it does not."""

from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from kubehatch.api.fields import (
    ActionName,
    CelExpression,
    CronSchedule,
    DnsLabel,
    Duration,
    EnvVarName,
    EventKey,
    Quantity,
)


def check(kind: Any, value: Any) -> Any:
    return TypeAdapter(kind).validate_python(value)


def rejects(kind: Any, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check(kind, value)


@pytest.mark.parametrize("name", ["a", "step-one", "s3", "x" * 63])
def test_dns_label_accepts_names(name: str) -> None:
    assert check(DnsLabel, name) == name


@pytest.mark.parametrize("name", ["", "Step", "step_one", "-a", "a-", "x" * 64, "a.b"])
def test_dns_label_rejects_and_shows_a_good_name(name: str) -> None:
    rejects(DnsLabel, name, "is not a valid name: use at most 63 lowercase")


@pytest.mark.parametrize("action", ["send", "user:send-email", "a:b"])
def test_action_name_accepts_bare_and_qualified(action: str) -> None:
    assert check(ActionName, action) == action


@pytest.mark.parametrize("action", ["user:", ":send", "a:b:c", "User:send", "send email"])
def test_action_name_rejects(action: str) -> None:
    rejects(ActionName, action, "is not a valid action: write 'service:action'")


def test_env_var_name() -> None:
    assert check(EnvVarName, "LOG_LEVEL") == "LOG_LEVEL"
    rejects(EnvVarName, "1ABC", "is not a valid environment variable name")


def test_event_key() -> None:
    assert check(EventKey, "user:created") == "user:created"
    rejects(EventKey, "user created", "is not a valid event key")
    rejects(EventKey, "", "is not a valid event key")


def test_duration_accepts_strings_and_timedeltas() -> None:
    assert check(Duration, "1h30m") == "1h30m"
    assert check(Duration, timedelta(minutes=5)) == "5m"


@pytest.mark.parametrize("text", ["", "5", "1x", "1m1h"])
def test_duration_rejects(text: str) -> None:
    rejects(Duration, text, "is not a duration")


@pytest.mark.parametrize("schedule", ["*/5 * * * *", "0 0 * * MON", "@hourly"])
def test_cron_schedule_accepts(schedule: str) -> None:
    assert check(CronSchedule, schedule) == schedule


@pytest.mark.parametrize("schedule", ["61 * * * *", "* * *", "* * * * * *", "bad"])
def test_cron_schedule_rejects_and_explains_the_five_fields(schedule: str) -> None:
    rejects(CronSchedule, schedule, "is not a cron schedule: use five fields")


def test_cel_expression() -> None:
    assert check(CelExpression, "input.user_id") == "input.user_id"
    rejects(CelExpression, "input.user_id ==", "is not a valid CEL expression")


def test_quantity_turns_numbers_into_strings() -> None:
    assert check(Quantity, 2) == "2"
    assert check(Quantity, "500m") == "500m"
    assert check(Quantity, "1.5Gi") == "1.5Gi"


@pytest.mark.parametrize("value", ["lots", "1 Gi", True])
def test_quantity_rejects(value: Any) -> None:
    with pytest.raises(ValidationError):
        check(Quantity, value)
