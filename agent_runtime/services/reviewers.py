"""Reviewer accounts: who may open the console, their passwords, and login throttling."""

from __future__ import annotations

import asyncio
import re
import unicodedata
import zlib
from datetime import datetime, timedelta
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
    "find_reviewer",
    "list_reviewers",
    "normalize_reviewer_name",
    "remove_reviewer",
    "set_reviewer_password",
]

PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # argon2 takes any length; this bounds the work a login can ask for
LOGIN_FAILURES_ALLOWED = (
    5  # attempts judged per reviewer name, and per client address, in LOGIN_WINDOW
)
LOGIN_WINDOW = timedelta(minutes=15)
WRONG_CREDENTIALS = "wrong name or password"
THROTTLED = "too many failed logins: try again later"

# PostgreSQL advisory locks of the throttle, in the two-int4 key space (apart from the
# migration lock's single bigint key): (_SCOPE_LOCKS, crc32 of the scope) serialises
# the attempts of one scope; (_CLEANUP_LOCK, 0) lets one transaction at a time delete
# old attempts.
_SCOPE_LOCKS = 0x4C47_4E01
_CLEANUP_LOCK = 0x4C47_4E02
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # as schemas/types.py refuses them

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


def normalize_reviewer_name(name: str) -> str:
    """The one form of a reviewer name, stored and looked up: NFKC, case-folded, then
    NFKC again (Unicode's NFKC_Casefold), without surrounding whitespace. `Reviewer1`,
    `reviewer1` and ` REVIEWER1` are one account; so are full-width and ligature forms."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


def _name(name: Any) -> str:
    """A reviewer name to store or look up, normalised; `InvalidInputError` if empty,
    over-long or unstorable."""
    if isinstance(name, str):
        name = normalize_reviewer_name(name)
    return str(validate(RequiredName, name, "name"))


async def find_reviewer(db: DB, name: str) -> Reviewer | None:
    """The reviewer `name` (as typed) denotes: the one stored under exactly `name`, else
    under its normalised form. Names are stored normalised, so both are the same
    account; the exact match only finds an account added before names were."""
    account = normalize_reviewer_name(name)
    candidates = {n for n in (name, account) if 0 < len(n) <= NAME_MAX}
    candidates = {n for n in candidates if not _UNSTORABLE.search(n)}
    if not candidates:
        return None
    found = await Reviewer.filter(name__in=sorted(candidates)).using_db(db)
    by_name = {r.name: r for r in found}
    return by_name.get(name) or by_name.get(account)


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
    """Create a reviewer under the normalised form of `name`
    (`normalize_reviewer_name`); `ConflictError` if that name is taken."""
    name, password = _name(name), _password(password)
    password_hash = await _hash(password)
    now = utc_now()
    try:
        async with atomic(db) as conn:
            # Names stored before they were normalised: one account per normalised name.
            stored: list[Any] = list(
                await Reviewer.all().using_db(conn).values_list("name", flat=True)
            )
            if any(normalize_reviewer_name(str(n)) == name for n in stored):
                raise ConflictError(f"reviewer {name!r} already exists")
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
    account = _name(name)
    async with atomic(db) as conn:
        reviewer = await find_reviewer(conn, name if isinstance(name, str) else account)
        if reviewer is None:
            return False
        deleted = await Reviewer.filter(id=reviewer.id).using_db(conn).delete()
    return deleted > 0


async def set_reviewer_password(db: DB, name: str, password: str) -> None:
    """Change the password and end every console session of the reviewer;
    `NotFoundError` if unknown."""
    account, password = _name(name), _password(password)
    password_hash = await _hash(password)
    async with atomic(db) as conn:
        reviewer = await find_reviewer(conn, name if isinstance(name, str) else account)
        if reviewer is None:
            raise NotFoundError(f"no reviewer named {account!r}")
        reviewer.password_hash = password_hash
        reviewer.password_changed_at = utc_now()
        await reviewer.save(using_db=conn, update_fields=["password_hash", "password_changed_at"])
        await ConsoleSession.filter(reviewer_id=reviewer.id).using_db(conn).delete()


def _lock_key(scope: str) -> int:
    """The scope's advisory lock key: its CRC-32 as a signed int4 (a collision only
    makes two scopes wait for each other)."""
    key = zlib.crc32(scope.encode("utf-8", "replace"))
    return key - (1 << 32) if key >= 1 << 31 else key


def _storable(text: str) -> str:
    """`text` as a scope can hold it (PostgreSQL refuses NUL in text)."""
    return _UNSTORABLE.sub("\ufffd", text)


def _retry_after(oldest: datetime, now: datetime) -> int:
    return max(1, int((as_utc(oldest) + LOGIN_WINDOW - now).total_seconds()) + 1)


async def _reserve(db: DB, scopes: list[str]) -> list[int]:
    """Reserve one attempt in each scope (rows of `login_failures`); their ids.

    `TooManyRequestsError`, reserving nothing, when a scope already holds
    LOGIN_FAILURES_ALLOWED attempts in LOGIN_WINDOW: failures, and attempts still
    being judged. Counting and reserving are one step whatever the concurrency:
    on PostgreSQL an advisory lock per scope, taken in key order (no deadlock),
    serialises the transactions of a scope until they commit; on SQLite the
    transaction holds the write lock from its start (BEGIN IMMEDIATE), and our rows
    are written before anything is counted, so under any BEGIN the count runs with
    the write lock held. The reservation is committed before the password is
    verified, so concurrent attempts see it.
    """
    now = utc_now()
    since = now - LOGIN_WINDOW
    async with atomic(db) as conn:
        if conn.capabilities.dialect == "postgres":
            for key in sorted({_lock_key(scope) for scope in scopes}):
                await conn.execute_query(
                    "SELECT pg_advisory_xact_lock($1, $2)", [_SCOPE_LOCKS, key]
                )
        ids = [
            (await LoginFailure.create(scope=scope, failed_at=now, using_db=conn)).id
            for scope in scopes
        ]
        for scope, mine in zip(scopes, ids, strict=True):
            earlier: list[Any] = list(
                await LoginFailure.filter(scope=scope, failed_at__gt=since)
                .exclude(id=mine)
                .using_db(conn)
                .order_by("-failed_at")
                .limit(LOGIN_FAILURES_ALLOWED)
                .values_list("failed_at", flat=True)
            )
            if len(earlier) >= LOGIN_FAILURES_ALLOWED:
                # Raised inside the transaction: our rows are rolled back with it.
                raise TooManyRequestsError(THROTTLED, retry_after=_retry_after(min(earlier), now))
        await _forget_old_attempts(conn, since)
    return ids


async def _forget_old_attempts(conn: DB, before: datetime) -> None:
    """Old attempts count for nothing; keep the table small as we go. One cleaner at a
    time on PostgreSQL (the others skip it): two deletes of the same rows in another
    order could deadlock."""
    if conn.capabilities.dialect == "postgres":
        rows = await conn.execute_query_dict(
            "SELECT pg_try_advisory_xact_lock($1, 0) AS locked", [_CLEANUP_LOCK]
        )
        if not rows[0]["locked"]:
            return
    await LoginFailure.filter(failed_at__lte=before).using_db(conn).delete()


async def authenticate(db: DB, name: str, password: str, *, address: str) -> str:
    """The reviewer's name (as stored) if `password` is theirs; `name` is taken in
    its normalised form (`normalize_reviewer_name`).

    At most LOGIN_FAILURES_ALLOWED attempts per normalised name and per client
    `address` are judged within LOGIN_WINDOW, however many arrive at once: each
    attempt is reserved in the database before the password is verified (and
    counts while it is being judged); the others get `TooManyRequestsError` at
    once, without hashing, even with the right password, so a throttled guess
    learns nothing. A failure keeps its reservation; a success releases it, so a
    reviewer's own logins do not lock them out. `UnauthorizedError`, with one
    message, for an unknown name and a wrong password, which take the same time.

    `db` should be a connection, not a transaction: the reservation must be
    committed, and the lock released, before the password is verified.
    """
    typed = name if isinstance(name, str) else ""
    password = password if isinstance(password, str) else ""
    account = normalize_reviewer_name(typed)
    scopes = [f"name:{_storable(account)[:NAME_MAX]}", f"addr:{_storable(address)[:NAME_MAX]}"]
    reserved = await _reserve(db, scopes)
    # Over-long input is refused, never cut down to a prefix that could match; it is
    # still checked against a stand-in hash, so the refusal takes as long.
    fits = len(password) <= PASSWORD_MAX
    reviewer = await find_reviewer(db, typed) if fits else None
    stored = reviewer.password_hash if reviewer else _DUMMY_HASH
    ok = await _verify(stored, password if fits else password[:PASSWORD_MAX])
    if reviewer is None or not ok:
        raise UnauthorizedError(WRONG_CREDENTIALS)  # the reservation stays: a failure
    await LoginFailure.filter(id__in=reserved).using_db(db).delete()
    return reviewer.name
