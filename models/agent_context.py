from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.limits import AGENT_MAX

if TYPE_CHECKING:
    from models.session import Session


class AgentContext(Model):
    """Which agent currently drives a session; one per session."""

    id = fields.BigIntField(primary_key=True)
    session: fields.OneToOneRelation[Session] = fields.OneToOneField(
        "models.Session", related_name="agent_context", on_delete=fields.CASCADE
    )
    current_agent = fields.CharField(max_length=AGENT_MAX)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    last_switch_at = fields.DatetimeField(null=True)
    switch_count = fields.IntField(default=0)
    metadata = fields.JSONField[Any](null=True)

    session_id: str

    class Meta:
        table = "agent_contexts"

    def __str__(self) -> str:
        return f"{self.session_id}: {self.current_agent}"


class AgentSwitch(Model):
    """One hand-over between agents; `position` keeps the caller's history order."""

    id = fields.BigIntField(primary_key=True)
    context: fields.ForeignKeyRelation[AgentContext] = fields.ForeignKeyField(
        "models.AgentContext", related_name="switches", on_delete=fields.CASCADE
    )
    position = fields.IntField()
    from_agent = fields.CharField(max_length=AGENT_MAX, null=True)
    to_agent = fields.CharField(max_length=AGENT_MAX)
    switched_at = fields.DatetimeField()
    reason = fields.TextField(null=True)
    metadata = fields.JSONField[Any](null=True)

    context_id: int

    class Meta:
        table = "agent_switches"
        unique_together = (("context", "position"),)
        indexes = (("context", "switched_at"),)

    def __str__(self) -> str:
        return f"{self.from_agent} -> {self.to_agent}"
