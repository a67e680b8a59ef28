"""Retention: soft-delete idle sessions, remove long-deleted ones."""

from __future__ import annotations

from datetime import timedelta

from tortoise.expressions import F

from agent_runtime.services._common import DB, atomic, require_non_negative_number
from agent_runtime.timeutils import utc_now
from models import PendingApproval, Session

__all__ = ["cleanup_old_sessions", "hard_delete_old_sessions"]

_ID_BATCH = 500  # well under SQLite's and PostgreSQL's bound-parameter limits


async def cleanup_old_sessions(db: DB, max_age_hours: float = 24) -> int:
    """Soft-delete sessions idle for longer than `max_age_hours`; return how many."""
    hours = require_non_negative_number(max_age_hours, "max_age_hours")
    now = utc_now()
    return await (
        Session.filter(deleted_at__isnull=True, last_activity__lt=now - timedelta(hours=hours))
        .using_db(db)
        .update(deleted_at=now, is_active=False, version=F("version") + 1)
    )


async def hard_delete_old_sessions(db: DB, days_old: float = 30) -> int:
    """Remove sessions soft-deleted more than `days_old` days ago, with their
    messages, contexts and approvals; return how many sessions."""
    days = require_non_negative_number(days_old, "days_old")
    cutoff = utc_now() - timedelta(days=days)
    async with atomic(db) as conn:
        # Deleted by id: SQLite's change counter would also count cascaded messages.
        ids = (
            await Session.filter(deleted_at__lt=cutoff).using_db(conn).values_list("id", flat=True)
        )
        for start in range(0, len(ids), _ID_BATCH):
            batch = ids[start : start + _ID_BATCH]
            await PendingApproval.filter(session_id__in=batch).using_db(conn).delete()
            await Session.filter(id__in=batch).using_db(conn).delete()
    return len(ids)
