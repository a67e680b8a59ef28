from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.enums import Role
from models.limits import ENUM_MAX, NAME_MAX
from models.reviewer import TOKEN_HASH_LEN, Reviewer


class ApiKey(Model):
    """A credential for the REST API, with the role that says what it may do.

    Only the token's SHA-256 is stored (the token is 256 random bits, so a fast
    hash is enough): a database read gives no way in. A reviewer key belongs to a
    reviewer account and decides as that account; removing the account removes
    its keys.
    """

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=NAME_MAX, unique=True)
    role = fields.CharEnumField(Role, max_length=ENUM_MAX)
    reviewer: fields.ForeignKeyNullableRelation[Reviewer] = fields.ForeignKeyField(
        "models.Reviewer", related_name="api_keys", on_delete=fields.CASCADE, null=True
    )
    token_hash = fields.CharField(max_length=TOKEN_HASH_LEN, unique=True)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    # Revoked keys are kept: the audit keeps their name, and authentication, once on,
    # stays on (revoking the last key must not open the API to anyone).
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"

    def __str__(self) -> str:
        return f"{self.role} key {self.name}"
