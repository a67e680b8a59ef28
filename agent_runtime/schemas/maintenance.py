from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CleanupCreate", "CleanupRead", "LiveRead", "ReadyRead"]


class CleanupCreate(BaseModel):
    """Retention run; a null field skips that step."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"idle_hours": 24, "purge_deleted_after_days": 30}]},
    )

    idle_hours: float | None = Field(24, ge=0, le=1e6, description="soft-delete idle sessions")
    purge_deleted_after_days: float | None = Field(
        30, ge=0, le=1e5, description="hard-delete sessions soft-deleted that long ago"
    )
    expire_approvals_after_hours: float | None = Field(
        None, ge=0, le=1e6, description="mark approvals pending that long as expired"
    )
    dry_run: bool = Field(False, description="count what would change; change nothing")


class CleanupRead(BaseModel):
    soft_deleted: int
    hard_deleted: int
    expired_approvals: int
    dry_run: bool


class LiveRead(BaseModel):
    status: str = Field(examples=["ok"])


class ReadyRead(BaseModel):
    status: str = Field(examples=["ready"])
    database: str = Field(examples=["postgres"])
    pending_migrations: list[str]
