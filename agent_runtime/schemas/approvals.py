from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.schemas.types import Decision, Id, JSONObject, Name, RequiredName, StorableText
from models import ApprovalStatus

__all__ = [
    "ApprovalCreate",
    "ApprovalDecisionCreate",
    "ApprovalIn",
    "ApprovalPageRead",
    "ApprovalRead",
]


class ApprovalIn(BaseModel):
    """A tool call to record; the service API validates its arguments with it."""

    model_config = ConfigDict(extra="forbid")

    session_id: Id
    call_id: Id
    tool_name: RequiredName
    arguments: JSONObject = Field(default_factory=dict)
    reason: StorableText | None = None


class ApprovalCreate(ApprovalIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "s1",
                    "call_id": "call_1",
                    "tool_name": "delete_file",
                    "arguments": {"path": "/tmp/report.csv"},
                    "reason": "destructive tool",
                }
            ]
        },
    )


class ApprovalRead(BaseModel):
    call_id: str
    session_id: str
    tool_name: str
    arguments: dict[str, Any]
    reason: str | None
    created_at: datetime
    status: ApprovalStatus
    decided_at: datetime | None
    decided_by: str | None


class ApprovalDecisionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "approved", "decided_by": "alice"}]},
    )

    status: Decision
    decided_by: Name | None = Field(None, description="who decided")


class ApprovalPageRead(BaseModel):
    items: list[ApprovalRead]
    next_cursor: str | None
