"""Datetime normalization at the service boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent_runtime.errors import InvalidInputError
from agent_runtime.timeutils import as_utc, parse_datetime

NOON = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        NOON,
        datetime(2026, 1, 2, 12, 0),  # naive: taken as UTC
        datetime(2026, 1, 2, 15, 0, tzinfo=timezone(timedelta(hours=3))),
        datetime(2026, 1, 2, 6, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        "2026-01-02T12:00:00Z",
        "2026-01-02T12:00:00+00:00",
        "2026-01-02T15:00:00+03:00",
        "2026-01-02T12:00:00",
    ],
)
def test_every_form_becomes_the_same_aware_utc_instant(value):
    result = parse_datetime(value, "t")

    assert result == NOON
    assert result.tzinfo is UTC


@pytest.mark.parametrize("value", ["noon", "", 1767355200, None, "2026-13-01T00:00:00"])
def test_non_datetimes_are_rejected(value):
    with pytest.raises(InvalidInputError, match="t must be an ISO 8601 datetime"):
        parse_datetime(value, "t")


def test_as_utc_keeps_the_instant():
    plus3 = datetime(2026, 1, 2, 15, 0, tzinfo=timezone(timedelta(hours=3)))
    assert as_utc(plus3) == plus3
    assert as_utc(plus3).utcoffset() == timedelta(0)
