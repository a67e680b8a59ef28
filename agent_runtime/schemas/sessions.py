from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from agent_runtime.schemas.types import (
    Count,
    JSONObject,
    Name,
    RequestTitle,
    RequiredName,
    StorableJSON,
    StorableText,
    UTCDateTime,
    storable_json,
)
from models import MessageRole
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
    "ToolCall",
    "ToolCallFunction",
]


class ToolCallFunction(BaseModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, StorableJSON]

    name: RequiredName = Field(examples=["get_weather"])
    arguments: StorableText = Field(examples=['{"city": "Paris"}'])


class ToolCall(BaseModel):
    """A tool call in the OpenAI chat format."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, StorableJSON]

    id: RequiredName = Field(examples=["call_1"])
    type: Literal["function"] = "function"
    function: ToolCallFunction


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
    """A chat message as the agent loop sends it over REST (OpenAI chat format):
    `MessageIn`, with tool calls in their OpenAI shape."""

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

    # The whole tool call by the JSON rule first: its free-form extra keys too.
    tool_calls: list[Annotated[ToolCall, BeforeValidator(storable_json)]] | None = None


class MessageRead(BaseModel):
    """A message as loaded: role and content, other keys only when set."""

    role: MessageRole
    content: str | None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class MessageItemRead(MessageRead):
    position: int = Field(description="0-based position in the session (saved order)")


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
