"""Retention: soft-delete idle sessions, remove long-deleted ones, expire old approvals."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from tortoise.expressions import F

from agent_runtime.schemas.validation import require_non_negative_number, require_positive_int
from agent_runtime.services._common import DB, atomic
from agent_runtime.services.checkpoints import delete_session_checkpoints, trim_checkpoints
from agent_runtime.services.events import record_event
from agent_runtime.services.message_cache import message_cache
from agent_runtime.timeutils import utc_now
from models import ApprovalStatus, Event, EventType, PendingApproval, PendingEvent, Session

__all__ = [
    "RetentionPolicy",
    "RetentionReport",
    "cleanup_old_sessions",
    "expire_pending_approvals",
    "hard_delete_old_sessions",
    "run_retention",
]

_RETENTION = "retention"  # the actor of what retention does
_ID_BATCH = 500  # well under SQLite's and PostgreSQL's bound-parameter limits


def _idle(hours: float) -> Any:
    now = utc_now()
    return Session.visible.filter(last_activity__lt=now - timedelta(hours=hours))


def _long_deleted(days: float) -> Any:
    return Session.filter(deleted_at__lt=utc_now() - timedelta(days=days))


def _stale_approvals(hours: float) -> Any:
    return PendingApproval.filter(
        status=ApprovalStatus.PENDING, created_at__lt=utc_now() - timedelta(hours=hours)
    )


async def cleanup_old_sessions(db: DB, max_age_hours: float = 24) -> int:
    """Soft-delete sessions idle for longer than `max_age_hours`; return how many."""
    hours = require_non_negative_number(max_age_hours, "max_age_hours")
    return (
        await _idle(hours)
        .using_db(db)
        .update(deleted_at=utc_now(), is_active=False, version=F("version") + 1)
    )


async def hard_delete_old_sessions(db: DB, days_old: float = 30) -> int:
    """Remove sessions soft-deleted more than `days_old` days ago, with their
    messages, contexts, approvals, events (the only way events are ever
    deleted) and LangGraph checkpoints; return how many sessions."""
    days = require_non_negative_number(days_old, "days_old")
    async with atomic(db) as conn:
        # Deleted by id: SQLite's change counter would also count cascaded messages.
        ids = await _long_deleted(days).using_db(conn).values_list("id", flat=True)
        for start in range(0, len(ids), _ID_BATCH):
            batch = ids[start : start + _ID_BATCH]
            await PendingApproval.filter(session_id__in=batch).using_db(conn).delete()
            await Event.filter(session_id__in=batch).using_db(conn).delete()
            await PendingEvent.filter(session_id__in=batch).using_db(conn).delete()
            await delete_session_checkpoints(conn, batch)  # LangGraph checkpoints
            await Session.filter(id__in=batch).using_db(conn).delete()
    for session_id in ids:
        message_cache.discard(session_id)
    return len(ids)


async def expire_pending_approvals(db: DB, max_age_hours: float) -> int:
    """Mark approvals pending for longer than `max_age_hours` as `expired`, each with
    its `approval.expired` event."""
    hours = require_non_negative_number(max_age_hours, "max_age_hours")
    expired = 0
    async with atomic(db) as conn:
        stale = await _stale_approvals(hours).using_db(conn).values_list("id", flat=True)
        for start in range(0, len(stale), _ID_BATCH):
            batch = stale[start : start + _ID_BATCH]
            # Still pending: a decision may have landed since the read (PostgreSQL).
            # Model rows: Tortoise drops select_for_update() from .values() queries.
            rows = await (
                PendingApproval.filter(id__in=batch, status=ApprovalStatus.PENDING)
                .using_db(conn)
                .select_for_update()
            )
            if not rows:
                continue
            await (
                PendingApproval.filter(id__in=[r.id for r in rows])
                .using_db(conn)
                .update(status=ApprovalStatus.EXPIRED, decided_at=utc_now(), decided_by=_RETENTION)
            )
            for row in rows:
                await record_event(
                    conn,
                    EventType.APPROVAL_EXPIRED,
                    row.session_id,
                    call_id=row.call_id,
                    actor=_RETENTION,
                )
            expired += len(rows)
    return expired


@dataclass(frozen=True)
class RetentionPolicy:
    """Each limit None: that step is skipped."""

    idle_hours: float | None = 24
    purge_deleted_after_days: float | None = 30
    expire_approvals_after_hours: float | None = None
    # LangGraph checkpoints kept per thread and namespace, the latest (None: all).
    keep_checkpoints: int | None = None


@dataclass(frozen=True)
class RetentionReport:
    soft_deleted: int = 0
    hard_deleted: int = 0
    expired_approvals: int = 0
    dry_run: bool = False
    trimmed_checkpoints: int = 0  # LangGraph checkpoints deleted by keep_checkpoints

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_retention(
    db: DB, policy: RetentionPolicy, *, dry_run: bool = False
) -> RetentionReport:
    """Apply `policy` (or, with `dry_run`, count what it would change)."""
    for name, value in asdict(policy).items():
        if value is not None:
            require_non_negative_number(value, name)
    if policy.keep_checkpoints is not None:  # keeping none would empty every thread
        require_positive_int(policy.keep_checkpoints, "keep_checkpoints")
    soft = hard = expired = 0
    if dry_run:
        if policy.idle_hours is not None:
            soft = await _idle(policy.idle_hours).using_db(db).count()
        if policy.purge_deleted_after_days is not None:
            hard = await _long_deleted(policy.purge_deleted_after_days).using_db(db).count()
        if policy.expire_approvals_after_hours is not None:
            expired = (
                await _stale_approvals(policy.expire_approvals_after_hours).using_db(db).count()
            )
        trimmed = await _trim_checkpoints(db, policy, dry_run=True)
        return RetentionReport(soft, hard, expired, dry_run=True, trimmed_checkpoints=trimmed)
    if policy.idle_hours is not None:
        soft = await cleanup_old_sessions(db, policy.idle_hours)
    if policy.purge_deleted_after_days is not None:
        hard = await hard_delete_old_sessions(db, policy.purge_deleted_after_days)
    if policy.expire_approvals_after_hours is not None:
        expired = await expire_pending_approvals(db, policy.expire_approvals_after_hours)
    trimmed = await _trim_checkpoints(db, policy)
    return RetentionReport(soft, hard, expired, trimmed_checkpoints=trimmed)


async def _trim_checkpoints(db: DB, policy: RetentionPolicy, *, dry_run: bool = False) -> int:
    """LangGraph checkpoints beyond the latest `keep_checkpoints` of each thread."""
    if policy.keep_checkpoints is None:
        return 0
    return await trim_checkpoints(db, policy.keep_checkpoints, dry_run=dry_run)
