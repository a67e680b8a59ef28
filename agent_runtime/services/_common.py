"""Helpers shared by the service modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, cast

from pydantic import TypeAdapter, ValidationError
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionContext

from agent_runtime.errors import InvalidInputError, PreconditionFailedError
from agent_runtime.schemas.types import Id, LookupId

DB = BaseDBAsyncClient  # a Tortoise connection or a transaction on it


class Unset:
    """Marks an argument the caller did not pass (None is a value: "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


# The transaction of the current HTTP request (see core/dependencies.py): it is the
# only one, and any error rolls all of it back, so a service needs no savepoint in it.
_request_transaction: ContextVar[BaseDBAsyncClient | None] = ContextVar(
    "request_transaction", default=None
)


def atomic(db: BaseDBAsyncClient) -> TransactionContext | nullcontext[BaseDBAsyncClient]:
    """A transaction on `db`, or a savepoint when `db` already is a transaction,
    or nothing when `db` is the request's transaction (saves a SAVEPOINT + RELEASE).

    Tortoise's public `in_transaction()` looks the connection up by name in the
    current context; callers hand us `db` explicitly, so we use it directly.
    """
    if db is _request_transaction.get():
        return nullcontext(db)
    return db._in_transaction()


@contextmanager
def request_transaction(transaction: BaseDBAsyncClient) -> Iterator[None]:
    """Mark `transaction` as the whole request's: rolled back entirely on any error."""
    token = _request_transaction.set(transaction)
    try:
        yield
    finally:
        _request_transaction.reset(token)


_adapters: dict[Any, TypeAdapter[Any]] = {}


def validate(schema: Any, value: Any, *where: str | int) -> Any:
    """`value` validated by the pydantic type or model `schema` (see schemas/types.py);
    `InvalidInputError` naming `where` (e.g. "messages", 3) if it is refused."""
    adapter = _adapters.get(schema)
    if adapter is None:
        adapter = _adapters[schema] = TypeAdapter(schema)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidInputError.from_validation(exc, *where) from None


def lookup_id(value: Any, what: str = "session_id") -> str:
    """An id to look up: any string that could have been stored."""
    return cast(str, validate(LookupId, value, what))


def require_id(value: Any, what: str = "session_id") -> str:
    """An id to store: non-empty, at most ID_MAX characters, storable."""
    return cast(str, validate(Id, value, what))


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
