from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.schemas.types import (
    Count,
    JSONObject,
    Name,
    RequestTitle,
    StorableJSON,
    StorableText,
    UTCDateTime,
)
from models.enums import MessageRole
from models.limits import TITLE_MAX

__all__ = [
    "MessageCreate",
    "MessageIn",
    "MessageItemRead",
    "MessagePageRead",
    "MessageRead",
    "SessionPageRead",
    "SessionRead",
    "SessionStatsRead",
    "SessionSummaryRead",
    "SessionUpdate",
]


class MessageIn(BaseModel):
    """What a stored message is: the service API validates legacy message dicts with
    it (other keys are ignored, as the legacy service did)."""

    model_config = ConfigDict(extra="ignore")

    role: MessageRole
    content: StorableText | None = None
    name: Name | None = None
    tool_call_id: Name | None = None
    tool_calls: list[StorableJSON] | None = None
    token_count: Count | None = None
    metadata: JSONObject | None = None
    timestamp: UTCDateTime | None = Field(
        None, description="When the message was produced; default: when saved. Naive = UTC."
    )


class MessageCreate(MessageIn):
    """A chat message as the agent loop sends it over REST: `MessageIn`, the rule the
    service API applies (`tool_calls` any storable JSON list, as the legacy service
    stored them; the OpenAI shape is the usual one, not a requirement)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"role": "user", "content": "What's the weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "tool_call_id": "call_1",
                    "name": "get_weather",
                    "content": "18C, sunny",
                },
            ]
        },
    )


class MessageRead(BaseModel):
    """A message as loaded: role and content, other keys only when set."""

    role: MessageRole
    content: str | None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[Any] | None = Field(None, description="as saved: any JSON list")


class MessageItemRead(MessageRead):
    """A message of a page: the loaded shape with its position, and its
    `token_count` and `metadata` when set."""

    position: int = Field(description="0-based position in the session (saved order)")
    token_count: int | None = None
    metadata: dict[str, Any] | None = Field(
        None, description="The metadata stored with the message (absent when none)"
    )


class SessionRead(BaseModel):
    """A whole session, as `load_session` returns it."""

    session_id: str
    messages: list[MessageRead]
    last_activity: datetime
    created_at: datetime


class SessionSummaryRead(BaseModel):
    session_id: str
    title: str | None
    description: str | None
    created_at: datetime
    last_activity: datetime
    deleted_at: datetime | None
    version: int = Field(description="Incremented by every write; the session's ETag")


class SessionUpdate(BaseModel):
    """Fields to change; a field left out is unchanged, null clears it."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"title": "Weather in Paris"}]}
    )

    title: RequestTitle | None = Field(None, description=f"cut to {TITLE_MAX} characters")
    description: StorableText | None = None


class SessionPageRead(BaseModel):
    items: list[SessionSummaryRead]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class MessagePageRead(BaseModel):
    items: list[MessageItemRead]
    next_cursor: str | None = Field(description="pass as `after` for the following messages")
    prev_cursor: str | None = Field(description="pass as `before` for the preceding messages")


class SessionStatsRead(BaseModel):
    session_id: str
    message_count: int
    total_tokens: int
    last_message_at: datetime | None
    created_at: datetime
    last_activity: datetime
