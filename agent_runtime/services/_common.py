"""Helpers shared by the service modules."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal, overload

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionContext

from agent_runtime.errors import InvalidInputError, PreconditionFailedError

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


# PostgreSQL cannot store NUL in text or JSON, and neither backend can encode a
# lone UTF-16 surrogate: refuse both up front, the same way on both backends.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_JSON_DEPTH = 64
ID_MAX = 255  # session and call ids: VARCHAR(255)
TITLE_MAX = 500  # session titles: VARCHAR(500); longer ones are cut


def check_text(value: str, what: str) -> str:
    if _UNSTORABLE.search(value):
        raise InvalidInputError(
            f"{what} contains a NUL character or an unpaired surrogate, which cannot be stored"
        )
    return value


def check_json(value: Any, what: str) -> Any:
    """`value` if it is JSON data both backends store as given: string keys, finite
    numbers, storable text, nesting at most MAX_JSON_DEPTH deep."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidInputError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, str):
            check_text(item, what)
        elif item is None or isinstance(item, bool | int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInputError(f"{what} contains {item}, which JSON cannot hold")
        elif isinstance(item, Mapping):
            for key, val in item.items():
                if not isinstance(key, str):
                    raise InvalidInputError(f"{what} has a non-string key {key!r}")
                check_text(key, what)
                stack.append((val, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((val, depth + 1) for val in item)
        else:
            raise InvalidInputError(f"{what} must be JSON data, not {type(item).__name__}")
    return value


def lookup_id(value: Any, what: str = "session_id") -> str:
    """An id to look up: any string that could have been stored."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > ID_MAX:
        raise InvalidInputError(f"{what} is longer than {ID_MAX} characters")
    return check_text(value, what)


@overload
def require_str(
    value: Any, what: str, *, max_length: int | None = None, optional: Literal[False] = False
) -> str: ...
@overload
def require_str(
    value: Any, what: str, *, max_length: int | None = None, optional: bool
) -> str | None: ...
def require_str(
    value: Any, what: str, *, max_length: int | None = None, optional: bool = False
) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not optional and value == ""):
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}")
    if max_length is not None and len(value) > max_length:
        raise InvalidInputError(f"{what} is longer than {max_length} characters")
    return check_text(value, what)


def require_id(value: Any, what: str = "session_id") -> str:
    return require_str(value, what, max_length=ID_MAX)


def optional_mapping(value: Any, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be an object, got {type(value).__name__}")
    return dict(check_json(value, what))


def check_version(if_version: Any) -> None:
    """An `if_version` that no session can have fails as a precondition, not as input."""
    if if_version is not None and (
        isinstance(if_version, bool) or not isinstance(if_version, int) or if_version < 1
    ):
        raise PreconditionFailedError(f"version {if_version!r} does not match")


def require_positive_int(value: Any, what: str, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{what} must be an integer >= {low}, got {value!r}")
    return value


def require_non_negative_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInputError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)
