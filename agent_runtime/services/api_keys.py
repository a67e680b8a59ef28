"""API keys: credentials for the REST API, each with a role, kept in the database
(only their SHA-256) so every worker and instance shares them."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from agent_runtime.errors import ConflictError, InvalidInputError, NotFoundError
from agent_runtime.schemas.types import RequiredName
from agent_runtime.schemas.validation import validate
from agent_runtime.services import reviewers as reviewer_service
from agent_runtime.services._common import DB, atomic
from agent_runtime.timeutils import as_utc, utc_now
from models import ApiKey, Role

__all__ = [
    "TOKEN_PREFIX",
    "Credential",
    "add_api_key",
    "any_api_keys",
    "credential_for_token",
    "list_api_keys",
    "revoke_api_key",
    "token_hash",
]

TOKEN_PREFIX = "ark_"  # lets secret scanners (and people) recognise a leaked key
LAST_USED_RESOLUTION = timedelta(minutes=1)  # `last used` is written at most this often


@dataclass(frozen=True)
class Credential:
    """Who a request's key belongs to: the key's name, its role, and for a reviewer
    key the reviewer account it decides as."""

    name: str
    role: Role
    reviewer: str | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _role(role: Any) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInputError(
            f"role {role!r} is not one of {', '.join(r.value for r in Role)}",
            [{"loc": ["role"], "msg": "unknown role", "type": "enum"}],
        ) from None


async def add_api_key(
    db: DB, name: str, role: str, *, reviewer: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Create the key `name` with `role`; returns its token (shown once, never
    stored) and the key as `list_api_keys` shows it. A reviewer key needs
    `reviewer`, an existing reviewer account; no other role takes one."""
    name = str(validate(RequiredName, name, "name"))
    kind = _role(role)
    if (kind == Role.REVIEWER) != (reviewer is not None):
        raise InvalidInputError(
            "a reviewer key needs --reviewer (an existing reviewer account); "
            "no other role takes one",
            [
                {
                    "loc": ["reviewer"],
                    "msg": "only and always for role reviewer",
                    "type": "value_error",
                }
            ],
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utc_now()
    try:
        async with atomic(db) as conn:
            reviewer_id = None
            if reviewer is not None:
                account = await reviewer_service.find_reviewer(conn, reviewer)
                if account is None:
                    raise NotFoundError(f"no reviewer named {reviewer!r}")
                reviewer_id, reviewer = account.id, account.name
            await ApiKey.create(
                name=name,
                role=kind,
                reviewer_id=reviewer_id,
                token_hash=token_hash(token),
                created_at=now,
                using_db=conn,
            )
    except IntegrityError:
        raise ConflictError(f"a key named {name!r} already exists") from None
    key = {
        "name": name,
        "role": kind,
        "reviewer": reviewer,
        "created_at": now,
        "last_used_at": None,
    }
    return token, key


async def list_api_keys(db: DB) -> list[dict[str, Any]]:
    """Every key, by name: role, reviewer account, created, last used, revoked.
    Never a token."""
    rows = await (
        ApiKey.all()
        .using_db(db)
        .order_by("name")
        .values("name", "role", "reviewer__name", "created_at", "last_used_at", "revoked_at")
    )
    return [{**row, "reviewer": row.pop("reviewer__name")} for row in rows]


async def revoke_api_key(db: DB, name: str) -> bool:
    """Revoke the key `name`: it opens nothing any more. Its row stays, for the
    record, and so authentication stays on. False if unknown or already revoked."""
    name = str(validate(RequiredName, name, "name"))
    async with atomic(db) as conn:
        revoked = ApiKey.filter(name=name, revoked_at=None).using_db(conn)
        return await revoked.update(revoked_at=utc_now()) > 0


async def any_api_keys(db: DB) -> bool:
    """Whether a key was ever made (revoked ones count): then every route needs one."""
    return await ApiKey.all().using_db(db).exists()


async def credential_for_token(db: DB, token: str) -> Credential | None:
    """The key whose token this is, or None; notes when it was used (at most once a
    minute, so a busy key costs no write per request)."""
    row = (
        await ApiKey.filter(token_hash=token_hash(token), revoked_at=None)
        .using_db(db)
        .first()
        .values("id", "name", "role", "reviewer__name", "last_used_at")
    )
    if row is None:
        return None
    now = utc_now()
    if row["last_used_at"] is None or now - as_utc(row["last_used_at"]) > LAST_USED_RESOLUTION:
        await ApiKey.filter(id=row["id"]).using_db(db).update(last_used_at=now)
    return Credential(row["name"], Role(row["role"]), row["reviewer__name"])
