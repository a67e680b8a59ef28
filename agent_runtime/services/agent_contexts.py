"""Agent contexts: which agent drives a session, and the history of switches."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from agent_runtime.schemas.agent_contexts import AgentContextIn, AgentSwitchIn
from agent_runtime.schemas.validation import lookup_id, require_id, require_positive_int, validate
from agent_runtime.services._common import DB, atomic
from agent_runtime.timeutils import as_utc, utc_now
from models import AgentContext, AgentSwitch, Session

__all__ = [
    "delete_agent_context",
    "get_agent_switch_history",
    "list_all_contexts",
    "load_agent_context",
    "put_agent_context",
    "save_agent_context",
]

logger = logging.getLogger(__name__)


def _new_switch(position: int, entry: AgentSwitchIn, now: datetime) -> AgentSwitch:
    """One history entry as an unsaved row; no timestamp means "when saved"."""
    return AgentSwitch(
        position=position,
        from_agent=entry.from_agent,
        to_agent=entry.to,
        switched_at=entry.timestamp or now,
        reason=entry.reason,
        metadata=entry.metadata,
    )


async def save_agent_context(
    db: DB,
    session_id: str,
    current_agent: str,
    agent_history: list[dict[str, Any]],
    metadata: dict[str, Any],
    created_at: datetime,
    last_switch_at: datetime | None,
    switch_count: int,
) -> None:
    """Create or replace the session's agent context and its switch history.

    Does nothing (logs a warning) when the session does not exist or is deleted,
    as the legacy service did.
    """
    await put_agent_context(
        db,
        session_id,
        current_agent,
        agent_history,
        metadata,
        created_at,
        last_switch_at,
        switch_count,
    )


async def put_agent_context(
    db: DB,
    session_id: str,
    current_agent: str,
    agent_history: list[dict[str, Any]],
    metadata: dict[str, Any] | None,
    created_at: datetime,
    last_switch_at: datetime | None,
    switch_count: int,
) -> bool:
    """`save_agent_context` that tells whether the session existed (and so was saved)."""
    session_id = require_id(session_id)
    if isinstance(agent_history, Sequence) and not isinstance(agent_history, str | bytes):
        agent_history = list(agent_history)  # a legacy caller's tuple is a list too
    context = validate(
        AgentContextIn,
        {
            "current_agent": current_agent,
            "agent_history": agent_history,
            "metadata": metadata,
            "created_at": created_at,
            "last_switch_at": last_switch_at,
            "switch_count": switch_count,
        },
    )
    now = utc_now()
    switches = [_new_switch(i, entry, now) for i, entry in enumerate(context.agent_history)]

    async with atomic(db) as conn:
        if not await Session.visible.filter(id=session_id).using_db(conn).exists():
            logger.warning("save_agent_context: session %r not found; nothing saved", session_id)
            return False
        values = {
            "current_agent": context.current_agent,
            "created_at": context.created_at,
            "updated_at": now,
            "last_switch_at": context.last_switch_at,
            "switch_count": context.switch_count,
            "metadata": context.metadata,
        }
        await AgentContext.bulk_create(
            [AgentContext(session_id=session_id, **values)], ignore_conflicts=True, using_db=conn
        )
        await AgentContext.filter(session_id=session_id).using_db(conn).update(**values)
        context_id = cast(
            int,
            await AgentContext.filter(session_id=session_id)
            .using_db(conn)
            .get()
            .values_list("id", flat=True),
        )
        await AgentSwitch.filter(context_id=context_id).using_db(conn).delete()
        for switch in switches:
            switch.context_id = context_id
        if switches:
            await AgentSwitch.bulk_create(switches, batch_size=500, using_db=conn)
    return True


def _history_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "from": row["from_agent"],
        "to": row["to_agent"],
        "reason": row["reason"],
        "timestamp": as_utc(row["switched_at"]).isoformat(),
        "metadata": row["metadata"] or {},
    }


async def load_agent_context(db: DB, session_id: str) -> dict[str, Any] | None:
    session_id = lookup_id(session_id)
    context = await (
        AgentContext.filter(Session.visible_through("session"), session_id=session_id)
        .using_db(db)
        .first()
        .values("id", "current_agent", "metadata", "created_at", "last_switch_at", "switch_count")
    )
    if context is None:
        return None
    rows = await (
        AgentSwitch.filter(context_id=context["id"])
        .using_db(db)
        .order_by("position")
        .values("from_agent", "to_agent", "reason", "switched_at", "metadata")
    )
    last_switch = context["last_switch_at"]
    return {
        "session_id": session_id,
        "current_agent": context["current_agent"],
        "agent_history": [_history_entry(r) for r in rows],
        "metadata": context["metadata"] or {},
        "created_at": as_utc(context["created_at"]),
        "last_switch_at": as_utc(last_switch) if last_switch is not None else None,
        "switch_count": context["switch_count"],
    }


async def delete_agent_context(db: DB, session_id: str) -> bool:
    session_id = lookup_id(session_id)
    deleted = await AgentContext.filter(session_id=session_id).using_db(db).delete()
    return deleted > 0


async def list_all_contexts(db: DB) -> list[str]:
    """Ids of the (not deleted) sessions that have an agent context."""
    ids = await (
        AgentContext.filter(Session.visible_through("session"))
        .using_db(db)
        .order_by("session_id")
        .values_list("session_id", flat=True)
    )
    return [str(i) for i in ids]


async def get_agent_switch_history(
    db: DB, session_id: str, limit: int = 100
) -> list[dict[str, Any]]:
    """Switches, newest first; ties in time keep the reverse of the saved order."""
    session_id = lookup_id(session_id)
    require_positive_int(limit, "limit")
    rows = await (
        AgentSwitch.filter(
            Session.visible_through("context__session"), context__session_id=session_id
        )
        .using_db(db)
        .order_by("-switched_at", "-position")
        .limit(limit)
        .values("id", "from_agent", "to_agent", "switched_at", "reason", "metadata")
    )
    return [
        {
            "id": str(r["id"]),
            "from_agent": r["from_agent"],
            "to_agent": r["to_agent"],
            "switched_at": as_utc(r["switched_at"]),
            "reason": r["reason"],
            "metadata": r["metadata"] or {},
        }
        for r in rows
    ]
