"""Every datetime crosses the service boundary as timezone-aware UTC.

Tortoise normalizes values passed to `create()`, but not attribute assignments
or `QuerySet.update()` on SQLite, where datetimes are ISO text and compared as
strings; so services normalize every datetime here before using it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent_runtime.errors import InvalidInputError

__all__ = ["as_utc", "parse_datetime", "to_utc_datetime", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC of `value`. A naive value is taken as UTC, like the legacy service wrote it."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_utc_datetime(value: object) -> datetime:
    """A datetime from a `datetime` or an ISO 8601 string, as aware UTC (ValueError if neither)."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise ValueError(f"must be an ISO 8601 datetime, got {value!r}")


def parse_datetime(value: object, what: str) -> datetime:
    """`to_utc_datetime`, refusing other values as invalid input named `what`."""
    try:
        return to_utc_datetime(value)
    except ValueError as exc:
        raise InvalidInputError(f"{what} {exc}") from None
