from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Session(Model):
    """A conversation. `id` is the caller's session id (legacy variant B)."""

    id = fields.CharField(max_length=255, primary_key=True)
    title = fields.CharField(max_length=500, null=True)
    description = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    last_activity = fields.DatetimeField(db_index=True)
    is_active = fields.BooleanField(default=True, db_index=True)
    deleted_at = fields.DatetimeField(null=True, db_index=True)
    # Incremented by every write to the session; served as its ETag.
    version = fields.IntField(default=1)
    # Random, replaced by every write to the messages: identifies the stored list,
    # so a process may trust its cached copy (see services/message_cache.py).
    messages_token = fields.BigIntField(default=0)

    class Meta:
        table = "sessions"

    def __str__(self) -> str:
        return self.id
