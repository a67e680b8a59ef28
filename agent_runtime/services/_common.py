"""Helpers shared by the service modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionContext

from agent_runtime.errors import InvalidInputError

DB = BaseDBAsyncClient  # a Tortoise connection or a transaction on it


class Unset:
    """Marks an argument the caller did not pass (None is a value: "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


def atomic(db: BaseDBAsyncClient) -> TransactionContext:
    """A transaction on `db`, or a savepoint when `db` already is a transaction.

    Tortoise's public `in_transaction()` looks the connection up by name in the
    current context; callers hand us `db` explicitly, so we use it directly.
    """
    return db._in_transaction()


def require_str(
    value: Any, what: str, *, max_length: int | None = None, optional: bool = False
) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not optional and value == ""):
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}")
    if max_length is not None and len(value) > max_length:
        raise InvalidInputError(f"{what} is longer than {max_length} characters")
    return value


def require_id(value: Any, what: str = "session_id") -> str:
    result = require_str(value, what, max_length=255)
    assert result is not None
    return result


def optional_mapping(value: Any, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be an object, got {type(value).__name__}")
    return dict(value)


def require_positive_int(value: Any, what: str, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{what} must be an integer >= {low}, got {value!r}")
    return value


def require_non_negative_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInputError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)
