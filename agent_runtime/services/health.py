"""Readiness: the database answers and its schema is current."""

from __future__ import annotations

import logging
from typing import Any

from agent_runtime.db.migrations import pending_on_connection
from agent_runtime.errors import MigrationFileError, UnavailableError
from agent_runtime.services._common import DB

__all__ = ["readiness"]

logger = logging.getLogger(__name__)


async def readiness(db: DB) -> dict[str, Any]:
    """`{status, database, pending_migrations}`; `UnavailableError` if not ready."""
    try:
        await db.execute_query("SELECT 1")
        pending = await pending_on_connection(db)
    except MigrationFileError as exc:
        raise UnavailableError(str(exc)) from exc
    except Exception as exc:
        logger.warning("readiness: database unreachable: %s", exc)
        raise UnavailableError("database unreachable") from exc
    if pending:
        raise UnavailableError(
            f"{len(pending)} migration(s) pending: "
            "run `agent-runtime migrate` (or `aerich upgrade`)"
        )
    return {"status": "ready", "database": db.capabilities.dialect, "pending_migrations": []}
