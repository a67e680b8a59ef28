"""Console log-in sessions and the keys that sign their cookies, kept in the database
so every worker and instance shares them (no secret to configure)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from agent_runtime.errors import ConflictError, NotFoundError
from agent_runtime.services._common import DB, atomic
from agent_runtime.services.reviewers import find_reviewer
from agent_runtime.timeutils import utc_now
from models import ConsoleKey, ConsoleSession

__all__ = [
    "ConsoleLogin",
    "console_login",
    "end_console_session",
    "rotate_signing_key",
    "signing_keys",
    "start_console_session",
]

KEYS_KEPT = 2  # after a rotation the previous key still verifies; older ones are dropped


@dataclass(frozen=True)
class ConsoleLogin:
    """Who a console cookie belongs to, and the CSRF token of their session."""

    reviewer: str
    csrf_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_console_session(db: DB, reviewer: str, lifetime: timedelta) -> str:
    """A new session for the reviewer named `reviewer` (any form of the name:
    `reviewers.normalize_reviewer_name`); returns its token (for the cookie)."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    async with atomic(db) as conn:
        found = await find_reviewer(conn, reviewer)
        if found is None:
            raise NotFoundError(f"no reviewer named {reviewer!r}")
        await ConsoleSession.create(
            token_hash=_hash(token),
            reviewer_id=found.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
            using_db=conn,
        )
        # Expired sessions are useless: drop them as new ones start.
        await ConsoleSession.filter(expires_at__lt=now).using_db(conn).delete()
    return token


async def console_login(db: DB, token: str) -> ConsoleLogin | None:
    """The live session behind `token`; None if it ended, expired or never existed."""
    row = (
        await ConsoleSession.filter(token_hash=_hash(token), expires_at__gt=utc_now())
        .using_db(db)
        .first()
        .values("reviewer__name", "csrf_token")
    )
    return ConsoleLogin(row["reviewer__name"], row["csrf_token"]) if row else None


async def end_console_session(db: DB, token: str) -> None:
    """Log out: the cookie opens nothing any more, whoever holds a copy."""
    await ConsoleSession.filter(token_hash=_hash(token)).using_db(db).delete()


async def signing_keys(db: DB) -> list[str]:
    """The cookie signing keys, oldest first (the last one signs); the first call
    on a new database creates one, once, whichever worker gets there first."""
    keys = await ConsoleKey.all().using_db(db).order_by("id").values_list("key", flat=True)
    if keys:
        return [str(k) for k in keys]
    # Id 1: two workers racing on an empty table cannot both insert. The loser's
    # insert does nothing rather than fail: an error would abort the transaction
    # of a request (on PostgreSQL), and `db` may be one.
    await ConsoleKey.bulk_create(
        [ConsoleKey(id=1, key=secrets.token_hex(32), created_at=utc_now())],
        ignore_conflicts=True,
        using_db=db,
    )
    return await signing_keys(db)


async def rotate_signing_key(db: DB) -> int:
    """Add a new signing key; cookies signed with the previous one stay valid until
    the next rotation, older ones stop working. Returns the number of keys kept."""
    await signing_keys(db)
    try:
        async with atomic(db) as conn:
            query = ConsoleKey.all().using_db(conn).order_by("-id").values_list("id", flat=True)
            ids: list[Any] = list(await query)
            new_id = ids[0] + 1
            await ConsoleKey.create(
                id=new_id, key=secrets.token_hex(32), created_at=utc_now(), using_db=conn
            )
            ids = [new_id, *ids]
            await ConsoleKey.filter(id__in=ids[KEYS_KEPT:]).using_db(conn).delete()
    except IntegrityError:
        raise ConflictError("another key rotation ran at the same time: nothing changed") from None
    return min(len(ids), KEYS_KEPT)
