from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "ErrorRead", "StatusRead"]


class ErrorBody(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["session 'abc' not found"])
    details: list[dict[str, Any]] | None = None


class ErrorRead(BaseModel):
    """Every error response has this body."""

    error: ErrorBody


class StatusRead(BaseModel):
    status: str = Field(examples=["saved"])
