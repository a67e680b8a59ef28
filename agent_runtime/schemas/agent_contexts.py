from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AgentContextCreate",
    "AgentContextListRead",
    "AgentContextRead",
    "AgentSwitchCreate",
    "AgentSwitchListRead",
    "AgentSwitchRead",
    "HistoryEntryRead",
]


class AgentSwitchCreate(BaseModel):
    """One entry of `agent_history` (the legacy `{from, to, reason, timestamp, metadata}`)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_agent: str | None = Field(None, alias="from", max_length=100)
    to: str = Field(min_length=1, max_length=100)
    reason: str | None = None
    timestamp: datetime | None = Field(None, description="default: when saved; naive = UTC")
    metadata: dict[str, Any] | None = None


class AgentContextCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "current_agent": "billing",
                    "agent_history": [
                        {
                            "from": "triage",
                            "to": "billing",
                            "reason": "invoice question",
                            "timestamp": "2026-01-02T12:05:00Z",
                            "metadata": {},
                        }
                    ],
                    "metadata": {"tenant": "acme"},
                    "switch_count": 1,
                }
            ]
        },
    )

    current_agent: str = Field(min_length=1, max_length=100)
    agent_history: list[AgentSwitchCreate] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = Field(None, description="default: now")
    last_switch_at: datetime | None = None
    switch_count: int = Field(0, ge=0, le=2**31 - 1)


class HistoryEntryRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_agent: str | None = Field(alias="from")
    to: str
    reason: str | None
    timestamp: str = Field(description="ISO 8601, UTC")
    metadata: dict[str, Any]


class AgentContextRead(BaseModel):
    session_id: str
    current_agent: str
    agent_history: list[HistoryEntryRead]
    metadata: dict[str, Any]
    created_at: datetime
    last_switch_at: datetime | None
    switch_count: int


class AgentContextListRead(BaseModel):
    session_ids: list[str]


class AgentSwitchRead(BaseModel):
    id: str
    from_agent: str | None
    to_agent: str
    switched_at: datetime
    reason: str | None
    metadata: dict[str, Any]


class AgentSwitchListRead(BaseModel):
    items: list[AgentSwitchRead] = Field(description="newest first")
