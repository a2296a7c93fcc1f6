"""Durations in the Go-like "1h30m" form the custom resources use.

The API stores durations as strings (not numbers of seconds) so that manifests stay
readable and match what Hatchet users already write. Only whole hours, minutes and
seconds are supported: nothing in a workflow needs sub-second precision, and a tiny
grammar is easy to check with the same regular expression in Python and in the CRD.
"""

from __future__ import annotations

import re
from datetime import timedelta

from kubehatch.errors import InvalidDurationError

#: The grammar, shared with the CRD ``pattern`` (RE2-compatible: no look-arounds).
DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"

_DURATION_RE = re.compile(DURATION_PATTERN)
_UNITS = {"h": 3600, "m": 60, "s": 1}
MAX_DURATION = timedelta(hours=87600)
"""Ten years: longer than anything a workflow waits for, and far from timedelta's limits."""


def is_duration(text: str) -> bool:
    """Whether ``text`` is a well-formed duration such as "90s" or "1h30m", within range."""
    return bool(text) and _DURATION_RE.fullmatch(text) is not None and _seconds(text) <= _MAX


def _seconds(text: str) -> int:
    return sum(int(amount) * _UNITS[unit] for amount, unit in re.findall(r"(\d+)([hms])", text))


_MAX = int(MAX_DURATION.total_seconds())


def parse_duration(value: str | timedelta) -> timedelta:
    """Turn "60s", "5m", "1h30m" (or a timedelta, returned as is) into a timedelta.

    Raises :class:`InvalidDurationError` that quotes the bad text and shows valid forms.
    """
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise InvalidDurationError(f"duration {value!r} is negative; use a positive timedelta")
        return value
    if not isinstance(value, str) or not value or _DURATION_RE.fullmatch(value) is None:
        raise InvalidDurationError(
            f"{value!r} is not a duration; write hours, minutes and seconds in that order, "
            'like "30s", "5m" or "1h30m"'
        )
    seconds = _seconds(value)
    if seconds > _MAX:
        raise InvalidDurationError(
            f"{value!r} is longer than the longest duration kubehatch takes (87600h, ten "
            "years); use a shorter one"
        )
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | str) -> str:
    """Render a timedelta in the canonical form ("1h30m", "45s", "0s").

    Sub-second parts are rounded up to the next second so that a short timeout never
    turns into "0s" (which would mean "no time at all"). Strings are validated and
    returned in canonical form, so "90s" becomes "1m30s".
    """
    delta = parse_duration(value)
    total = int(delta.total_seconds())
    if delta.microseconds:
        total += 1
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s")]
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount)
