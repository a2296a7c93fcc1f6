"""Reading the API server's JSON leniently: objects that may be missing, RFC 3339 times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: for reading objects leniently."""
    return value if isinstance(value, dict) else {}


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time (as the API server stores it) as an aware datetime, else None.

    Accepts ``Z`` in either case (the API server lets a lower-case ``z`` through), and
    datetimes that are already aware; a time without a zone is None, never a guess.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a Z, the form Kubernetes writes (microseconds only if any)."""
    value = value.astimezone(UTC)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")
