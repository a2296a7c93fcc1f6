from datetime import timedelta

import pytest

from kubehatch import format_duration, parse_duration
from kubehatch.durations import is_duration
from kubehatch.errors import InvalidDurationError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60s", timedelta(seconds=60)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2h3m4s", timedelta(hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_passes_timedeltas_through() -> None:
    assert parse_duration(timedelta(minutes=2)) == timedelta(minutes=2)


@pytest.mark.parametrize("text", ["", "5", "1m1h", "1.5s", "1d", " 5s", "5S", "-5s"])
def test_parse_duration_rejects_malformed_text_and_explains(text: str) -> None:
    with pytest.raises(InvalidDurationError, match=r'like "30s", "5m" or "1h30m"'):
        parse_duration(text)
    assert not is_duration(text)


def test_parse_duration_rejects_negative_timedeltas() -> None:
    with pytest.raises(InvalidDurationError, match="negative"):
        parse_duration(timedelta(seconds=-1))


def test_invalid_duration_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_duration(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "0s"),
        (timedelta(hours=2, seconds=1), "2h1s"),
        (timedelta(milliseconds=1), "1s"),  # rounded up: never a zero timeout
        ("90s", "1m30s"),
    ],
)
def test_format_duration(value: timedelta | str, expected: str) -> None:
    assert format_duration(value) == expected


def test_format_then_parse_round_trips() -> None:
    delta = timedelta(hours=26, minutes=1, seconds=59)
    assert parse_duration(format_duration(delta)) == delta
