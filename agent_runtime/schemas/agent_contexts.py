from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.schemas.types import (
    AgentName,
    Count,
    JSONObject,
    OptionalAgentName,
    StorableText,
    UTCDateTime,
)

__all__ = [
    "AgentContextCreate",
    "AgentContextIn",
    "AgentContextListRead",
    "AgentContextRead",
    "AgentSwitchCreate",
    "AgentSwitchIn",
    "AgentSwitchListRead",
    "AgentSwitchRead",
    "HistoryEntryRead",
]


class AgentSwitchIn(BaseModel):
    """One entry of `agent_history` (the legacy `{from, to, reason, timestamp, metadata}`);
    the service API validates legacy dicts with it, ignoring other keys as legacy did."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    from_agent: OptionalAgentName | None = Field(None, alias="from")
    to: AgentName
    reason: StorableText | None = None
    timestamp: UTCDateTime | None = Field(None, description="default: when saved; naive = UTC")
    metadata: JSONObject | None = None


class AgentSwitchCreate(AgentSwitchIn):
    """An `agent_history` entry sent over REST: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class AgentContextIn(BaseModel):
    """The arguments of `save_agent_context`, as the service API validates them."""

    current_agent: AgentName
    agent_history: list[AgentSwitchIn]
    metadata: JSONObject | None
    created_at: UTCDateTime
    last_switch_at: UTCDateTime | None
    switch_count: Count


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

    current_agent: AgentName
    agent_history: list[AgentSwitchCreate] = Field(default_factory=list)
    metadata: JSONObject = Field(default_factory=dict)
    created_at: UTCDateTime | None = Field(None, description="default: now")
    last_switch_at: UTCDateTime | None = None
    switch_count: Count = 0


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
