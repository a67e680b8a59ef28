from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.limits import NAME_MAX

HASH_MAX = 255  # an argon2 hash in PHC format, with room for stronger parameters
TOKEN_HASH_LEN = 64  # SHA-256, hex


class Reviewer(Model):
    """A person who may open the reviewer console and decide tool calls.

    The password is only ever stored as an argon2 hash. Their name is what the
    console records as `decided_by`.
    """

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=NAME_MAX, unique=True)
    password_hash = fields.CharField(max_length=HASH_MAX)
    created_at = fields.DatetimeField()
    password_changed_at = fields.DatetimeField()

    class Meta:
        table = "reviewers"

    def __str__(self) -> str:
        return self.name


class ConsoleSession(Model):
    """A logged-in console session; deleting the row ends it.

    The cookie holds the (signed) token; only its SHA-256 is stored, so a database
    read gives no way in. Logging out, a changed password and a removed reviewer
    all delete the row.
    """

    token_hash = fields.CharField(max_length=TOKEN_HASH_LEN, primary_key=True)
    reviewer: fields.ForeignKeyRelation[Reviewer] = fields.ForeignKeyField(
        "models.Reviewer", related_name="console_sessions", on_delete=fields.CASCADE
    )
    csrf_token = fields.CharField(max_length=TOKEN_HASH_LEN)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "console_sessions"

    def __str__(self) -> str:
        return f"session of reviewer {self.reviewer_id}"  # type: ignore[attr-defined]


class ConsoleKey(Model):
    """The keys that sign console cookies, shared by every worker and instance.

    The newest signs; the older ones still verify, so a rotation logs nobody out
    until they are dropped.
    """

    # Given, not generated: the first key is id 1, so workers racing to create it collide.
    id = fields.IntField(primary_key=True, generated=False)
    key = fields.CharField(max_length=TOKEN_HASH_LEN)
    created_at = fields.DatetimeField()

    class Meta:
        table = "console_keys"

    def __str__(self) -> str:
        return f"console key {self.id}"


class LoginFailure(Model):
    """A failed console login, counted per reviewer name and per client address.

    In the database, so the throttle holds across every worker and instance.
    """

    id = fields.BigIntField(primary_key=True)
    scope = fields.CharField(max_length=NAME_MAX + 8)  # "name:<name>" or "addr:<address>"
    failed_at = fields.DatetimeField()

    class Meta:
        table = "login_failures"
        indexes = (("scope", "failed_at"),)

    def __str__(self) -> str:
        return f"{self.scope} at {self.failed_at}"
