"""Helpers shared by the service modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionContext

from agent_runtime.errors import PreconditionFailedError

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


def check_version(if_version: Any) -> None:
    """An `if_version` that no session can have fails as a precondition, not as input."""
    if if_version is not None and (
        isinstance(if_version, bool) or not isinstance(if_version, int) or if_version < 1
    ):
        raise PreconditionFailedError(f"version {if_version!r} does not match")
