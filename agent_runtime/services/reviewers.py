"""Reviewer accounts: who may open the console, their passwords, and login throttling."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.exceptions import IntegrityError

from agent_runtime.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
)
from agent_runtime.schemas.types import RequiredName
from agent_runtime.schemas.validation import validate
from agent_runtime.services._common import DB, atomic
from agent_runtime.timeutils import as_utc, utc_now
from models import ConsoleSession, LoginFailure, Reviewer
from models.limits import NAME_MAX

__all__ = [
    "LOGIN_FAILURES_ALLOWED",
    "LOGIN_WINDOW",
    "PASSWORD_MIN",
    "add_reviewer",
    "authenticate",
    "list_reviewers",
    "remove_reviewer",
    "set_reviewer_password",
]

PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # argon2 takes any length; this bounds the work a login can ask for
LOGIN_FAILURES_ALLOWED = 5  # per reviewer name, and per client address, in LOGIN_WINDOW
LOGIN_WINDOW = timedelta(minutes=15)
WRONG_CREDENTIALS = "wrong name or password"

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
# Verified for unknown names too, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def _password(password: Any) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInputError(
            f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters",
            [{"loc": ["password"], "msg": "wrong length", "type": "value_error"}],
        )
    return password


def _name(name: Any) -> str:
    return str(validate(RequiredName, name, "name"))


async def _hash(password: str) -> str:
    # ~50 ms of CPU by design: off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


async def add_reviewer(db: DB, name: str, password: str) -> dict[str, Any]:
    """Create a reviewer; `ConflictError` if the name is taken."""
    name, password = _name(name), _password(password)
    password_hash = await _hash(password)
    now = utc_now()
    try:
        async with atomic(db) as conn:
            reviewer = await Reviewer.create(
                name=name,
                password_hash=password_hash,
                created_at=now,
                password_changed_at=now,
                using_db=conn,
            )
    except IntegrityError:
        raise ConflictError(f"reviewer {name!r} already exists") from None
    return {"name": reviewer.name, "created_at": now}


async def list_reviewers(db: DB) -> list[dict[str, Any]]:
    """Every reviewer, by name, with when they were added and changed their password."""
    return await (
        Reviewer.all()
        .using_db(db)
        .order_by("name")
        .values("name", "created_at", "password_changed_at")
    )


async def remove_reviewer(db: DB, name: str) -> bool:
    """Delete the reviewer and end their console sessions; False if unknown.
    Their past decisions keep their name."""
    name = _name(name)
    async with atomic(db) as conn:
        deleted = await Reviewer.filter(name=name).using_db(conn).delete()
    return deleted > 0


async def set_reviewer_password(db: DB, name: str, password: str) -> None:
    """Change the password and end every console session of the reviewer;
    `NotFoundError` if unknown."""
    name, password = _name(name), _password(password)
    password_hash = await _hash(password)
    async with atomic(db) as conn:
        reviewer = await Reviewer.filter(name=name).using_db(conn).first()
        if reviewer is None:
            raise NotFoundError(f"no reviewer named {name!r}")
        reviewer.password_hash = password_hash
        reviewer.password_changed_at = utc_now()
        await reviewer.save(using_db=conn, update_fields=["password_hash", "password_changed_at"])
        await ConsoleSession.filter(reviewer_id=reviewer.id).using_db(conn).delete()


async def _throttled(db: DB, scopes: list[str]) -> int | None:
    """Seconds to wait when any scope has used up its failures, else None."""
    since = utc_now() - LOGIN_WINDOW
    for scope in scopes:
        failures: list[Any] = list(
            await LoginFailure.filter(scope=scope, failed_at__gt=since)
            .using_db(db)
            .order_by("-failed_at")
            .limit(LOGIN_FAILURES_ALLOWED)
            .values_list("failed_at", flat=True)
        )
        if len(failures) >= LOGIN_FAILURES_ALLOWED:
            oldest = as_utc(min(failures))
            return max(1, int((oldest + LOGIN_WINDOW - utc_now()).total_seconds()) + 1)
    return None


async def authenticate(db: DB, name: str, password: str, *, address: str) -> str:
    """The reviewer's name if `password` is theirs.

    `UnauthorizedError` with one message for an unknown name and a wrong password;
    `TooManyRequestsError` after LOGIN_FAILURES_ALLOWED failures for the name or
    for the client `address` within LOGIN_WINDOW (checked before the password, so
    a throttled guess learns nothing). A success does not clear the count: the
    window does.
    """
    name = name if isinstance(name, str) else ""
    password = password if isinstance(password, str) else ""
    scopes = [f"name:{name[:NAME_MAX]}", f"addr:{address[:NAME_MAX]}"]
    retry_after = await _throttled(db, scopes)
    if retry_after is not None:
        raise TooManyRequestsError(
            "too many failed logins: try again later", retry_after=retry_after
        )
    # Over-long input is refused, never cut down to a prefix that could match; it is
    # still checked against a stand-in hash, so the refusal takes as long.
    fits = len(name) <= NAME_MAX and len(password) <= PASSWORD_MAX
    reviewer = await Reviewer.filter(name=name).using_db(db).first() if fits else None
    stored = reviewer.password_hash if reviewer else _DUMMY_HASH
    ok = await _verify(stored, password if fits else password[:PASSWORD_MAX])
    if reviewer is None or not ok:
        now = utc_now()
        async with atomic(db) as conn:
            await LoginFailure.bulk_create(
                [LoginFailure(scope=s, failed_at=now) for s in scopes], using_db=conn
            )
            # Old failures count for nothing; keep the table small as we go.
            await LoginFailure.filter(failed_at__lt=now - LOGIN_WINDOW).using_db(conn).delete()
        raise UnauthorizedError(WRONG_CREDENTIALS)
    return reviewer.name
