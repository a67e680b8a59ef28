"""Every datetime crosses the service boundary as timezone-aware UTC.

Tortoise normalizes values passed to `create()`, but not attribute assignments
or `QuerySet.update()` on SQLite, where datetimes are ISO text and compared as
strings; so services normalize every datetime here before using it.

**The datetime rule**, defined once (`to_utc_datetime`, behind the schemas'
`UTCDateTime` and `parse_datetime`): an input datetime is an aware or naive
(= UTC) `datetime`, or an ISO 8601 string, whose instant in UTC lies between
0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z (Python's range, which both
backends store). `0001-01-01T00:00:00+14:00` is before it and
`9999-12-31T23:59:59-14:00` after it: refused as invalid input (422), like an
unparsable string, instead of failing inside the conversion.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent_runtime.errors import InvalidInputError

__all__ = ["as_utc", "parse_datetime", "to_utc_datetime", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC of `value`. A naive value is taken as UTC, like the legacy service wrote it.

    For values already checked (`to_utc_datetime`) or read back from the database:
    one whose UTC instant is out of Python's range raises `OverflowError`."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_utc_datetime(value: object) -> datetime:
    """A datetime from a `datetime` or an ISO 8601 string, as aware UTC; ValueError if
    it is neither, or if its instant in UTC is out of range (the module's rule)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"must be an ISO 8601 datetime, got {value!r:.80}") from None
    else:
        raise ValueError(f"must be an ISO 8601 datetime, got {value!r:.80}")
    try:
        return as_utc(parsed)
    except OverflowError:
        shown = value if isinstance(value, str) else value.isoformat()
        raise ValueError(
            f"is out of range: {shown:.80} in UTC is not between 0001-01-01 and 9999-12-31"
        ) from None


def parse_datetime(value: object, what: str) -> datetime:
    """`to_utc_datetime`, refusing other values as invalid input named `what`."""
    try:
        return to_utc_datetime(value)
    except ValueError as exc:
        raise InvalidInputError(f"{what} {exc}") from None
