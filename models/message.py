from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.enums import MessageRole
from models.limits import ENUM_MAX, NAME_MAX

__all__ = ["Message", "MessageRole"]

if TYPE_CHECKING:
    from models.session import Session


class Message(Model):
    """One chat message. Order is `position` (0-based within the session), never time."""

    id = fields.BigIntField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="messages", on_delete=fields.CASCADE
    )
    position = fields.IntField()
    role = fields.CharEnumField(MessageRole, max_length=ENUM_MAX)
    content = fields.TextField(null=True)
    timestamp = fields.DatetimeField()
    name = fields.CharField(max_length=NAME_MAX, null=True)
    tool_call_id = fields.CharField(max_length=NAME_MAX, null=True)
    tool_calls = fields.JSONField[Any](null=True)
    token_count = fields.IntField(null=True)
    metadata = fields.JSONField[Any](null=True)

    session_id: str

    class Meta:
        table = "messages"
        unique_together = (("session", "position"),)

    def __str__(self) -> str:
        return f"{self.session_id}#{self.position} ({self.role})"
