from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.schemas.types import (
    Decision,
    Id,
    JSONObject,
    Name,
    Outcome,
    RequiredName,
    StorableJSON,
    StorableText,
)
from models.enums import ApprovalStatus, EventType

__all__ = [
    "MAX_WAIT_SECONDS",
    "ApprovalClaimCreate",
    "ApprovalClaimRead",
    "ApprovalCreate",
    "ApprovalDecisionCreate",
    "ApprovalEventRead",
    "ApprovalIn",
    "ApprovalPageRead",
    "ApprovalRead",
    "ApprovalResultCreate",
    "ApprovalStatusRead",
    "ApprovalStatusUpdate",
]

# The longest `GET /approvals/{call_id}/wait` (seconds); a longer wait is a loop of these.
MAX_WAIT_SECONDS = 60.0


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
    message: str | None = Field(description="the reviewer's message for the agent")
    edited_arguments: dict[str, Any] | None = Field(
        description="the arguments to run instead of `arguments`, when the reviewer edited them"
    )
    claimed_by: str | None
    claimed_at: datetime | None
    claim_expires_at: datetime | None = Field(description="when the current claim's lease ends")
    result: Any = Field(description="what the claim's holder reported with the outcome")
    finished_at: datetime | None = Field(description="when the outcome was reported")


class ApprovalClaimRead(ApprovalRead):
    claim_token: str = Field(
        description="the one token that can report this run's outcome; shown only here"
    )


class ApprovalDecisionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": "approved", "decided_by": "alice"},
                {
                    "status": "approved",
                    "decided_by": "alice",
                    "message": "only the draft copy",
                    "arguments": {"path": "/tmp/report-draft.csv"},
                },
            ]
        },
    )

    status: Decision
    decided_by: Name | None = Field(None, description="who decided")
    message: StorableText | None = Field(None, description="text for the agent")
    arguments: JSONObject | None = Field(
        None, description="when approving: the arguments to run (the recorded ones are kept)"
    )


class ApprovalStatusUpdate(BaseModel):
    """The legacy `update_approval_status`: set the decision, last write wins."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "rejected"}]},
    )

    status: Decision


class ApprovalStatusRead(BaseModel):
    updated: bool = Field(description="false when the call is unknown, or already claimed or run")


class ApprovalClaimCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claimed_by: Name | None = Field(None, description="who will run the tool (for the record)")


class ApprovalResultCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"claim_token": "...", "status": "executed", "result": {"deleted": 1}}]
        },
    )

    claim_token: str = Field(max_length=200)
    status: Outcome
    result: StorableJSON = None


class ApprovalEventRead(BaseModel):
    id: int = Field(description="position in the event log (the SSE `id:`)")
    type: EventType
    session_id: str
    call_id: str | None
    actor: str | None
    data: Any
    created_at: datetime


class ApprovalPageRead(BaseModel):
    items: list[ApprovalRead]
    next_cursor: str | None
