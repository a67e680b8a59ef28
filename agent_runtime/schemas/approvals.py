from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ApprovalCreate", "ApprovalDecisionCreate", "ApprovalPageRead", "ApprovalRead"]

Status = Literal["pending", "approved", "rejected", "cancelled", "expired"]


class ApprovalCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
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

    session_id: str = Field(min_length=1, max_length=255)
    call_id: str = Field(min_length=1, max_length=255)
    tool_name: str = Field(min_length=1, max_length=255)
    arguments: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None


class ApprovalRead(BaseModel):
    call_id: str
    session_id: str
    tool_name: str
    arguments: dict[str, Any]
    reason: str | None
    created_at: datetime
    status: Status
    decided_at: datetime | None
    decided_by: str | None


class ApprovalDecisionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "approved", "decided_by": "alice"}]},
    )

    status: Literal["approved", "rejected", "cancelled"]
    decided_by: str | None = Field(None, max_length=255, description="who decided")


class ApprovalPageRead(BaseModel):
    items: list[ApprovalRead]
    next_cursor: str | None
