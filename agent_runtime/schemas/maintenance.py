from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from models.limits import BIGINT_MAX

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
    keep_checkpoints: int | None = Field(
        None,
        ge=1,
        le=BIGINT_MAX,
        description="keep this many LangGraph checkpoints per thread and namespace, the "
        "latest, and delete the older ones",
    )
    dry_run: bool = Field(False, description="count what would change; change nothing")


class CleanupRead(BaseModel):
    soft_deleted: int
    hard_deleted: int
    expired_approvals: int
    dry_run: bool
    trimmed_checkpoints: int = Field(
        0, description="LangGraph checkpoints deleted (or, dry run, that would be)"
    )


class LiveRead(BaseModel):
    status: str = Field(examples=["ok"])


class ReadyRead(BaseModel):
    status: str = Field(examples=["ready"])
    database: str = Field(examples=["postgres"])
    pending_migrations: list[str]
