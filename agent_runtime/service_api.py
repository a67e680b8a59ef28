"""The service API: async functions mirroring the legacy `DatabaseService`.

Also importable as `agent_runtime.services.database`, its first path. It sits above
the event hub (`wait_for_decision`), the functions themselves live in `services/`.

Every function takes `db` first: a Tortoise connection, or a transaction on one
(such as the `DBSession` dependency). `DatabaseService` exposes the same
functions as methods, so code written against the legacy class moves over by
changing imports.

Datetimes: every datetime returned is timezone-aware UTC. Inputs may carry any
offset and are stored as the same instant; naive inputs are taken as UTC (the
legacy service wrote UTC wall-clock time into naive columns).
"""

from __future__ import annotations

from agent_runtime.config import get_settings
from agent_runtime.db import connection
from agent_runtime.db.connection import current_database, get_connection
from agent_runtime.db.urls import DatabaseURL
from agent_runtime.events.service_hub import stop_service_api_hub
from agent_runtime.events.waits import wait_for_decision
from agent_runtime.services.agent_contexts import (
    delete_agent_context,
    get_agent_switch_history,
    list_all_contexts,
    load_agent_context,
    put_agent_context,
    save_agent_context,
)
from agent_runtime.services.approvals import (
    create_approval,
    decide_approval,
    delete_pending_approval,
    get_approval,
    get_pending_approvals,
    list_approvals,
    save_pending_approval,
    update_approval_status,
)
from agent_runtime.services.claims import claim_approval, report_result
from agent_runtime.services.events import get_approval_events, read_events
from agent_runtime.services.message_cache import message_cache
from agent_runtime.services.messages import get_messages_paginated, list_messages
from agent_runtime.services.retention import cleanup_old_sessions, hard_delete_old_sessions
from agent_runtime.services.save import append_messages, save_session, write_messages
from agent_runtime.services.sessions import (
    delete_session,
    get_session,
    get_session_stats,
    get_session_version,
    list_all_sessions,
    list_sessions,
    load_session,
    load_session_json,
    update_session,
    update_session_description,
    update_session_title,
)

__all__ = [  # the legacy module API, and the service functions beyond it
    "DatabaseService",
    "append_messages",
    "claim_approval",
    "cleanup_old_sessions",
    "close_db",
    "create_approval",
    "current_database",
    "decide_approval",
    "delete_agent_context",
    "delete_pending_approval",
    "delete_session",
    "get_agent_switch_history",
    "get_approval",
    "get_approval_events",
    "get_connection",
    "get_messages_paginated",
    "get_pending_approvals",
    "get_session",
    "get_session_stats",
    "get_session_version",
    "hard_delete_old_sessions",
    "init_database",
    "init_db",
    "list_all_contexts",
    "list_all_sessions",
    "list_approvals",
    "list_messages",
    "list_sessions",
    "load_agent_context",
    "load_session",
    "load_session_json",
    "put_agent_context",
    "read_events",
    "report_result",
    "save_agent_context",
    "save_pending_approval",
    "save_session",
    "update_approval_status",
    "update_session",
    "update_session_description",
    "update_session_title",
    "wait_for_decision",
    "write_messages",
]


class DatabaseService:
    """The legacy class API; each method is the module function of the same name.

    The methods after the legacy ones serve the REST API (pages, versions, decisions).
    """

    save_session = staticmethod(save_session)
    load_session = staticmethod(load_session)
    delete_session = staticmethod(delete_session)
    list_all_sessions = staticmethod(list_all_sessions)
    get_messages_paginated = staticmethod(get_messages_paginated)
    get_session_stats = staticmethod(get_session_stats)
    update_session_title = staticmethod(update_session_title)
    update_session_description = staticmethod(update_session_description)
    save_agent_context = staticmethod(save_agent_context)
    load_agent_context = staticmethod(load_agent_context)
    delete_agent_context = staticmethod(delete_agent_context)
    list_all_contexts = staticmethod(list_all_contexts)
    get_agent_switch_history = staticmethod(get_agent_switch_history)
    cleanup_old_sessions = staticmethod(cleanup_old_sessions)
    hard_delete_old_sessions = staticmethod(hard_delete_old_sessions)
    save_pending_approval = staticmethod(save_pending_approval)
    get_pending_approvals = staticmethod(get_pending_approvals)
    delete_pending_approval = staticmethod(delete_pending_approval)
    update_approval_status = staticmethod(update_approval_status)
    # Beyond the legacy API:
    append_messages = staticmethod(append_messages)
    write_messages = staticmethod(write_messages)
    get_session = staticmethod(get_session)
    get_session_version = staticmethod(get_session_version)
    load_session_json = staticmethod(load_session_json)
    list_sessions = staticmethod(list_sessions)
    list_messages = staticmethod(list_messages)
    update_session = staticmethod(update_session)
    put_agent_context = staticmethod(put_agent_context)
    create_approval = staticmethod(create_approval)
    get_approval = staticmethod(get_approval)
    list_approvals = staticmethod(list_approvals)
    decide_approval = staticmethod(decide_approval)
    claim_approval = staticmethod(claim_approval)
    report_result = staticmethod(report_result)
    get_approval_events = staticmethod(get_approval_events)
    read_events = staticmethod(read_events)
    wait_for_decision = staticmethod(wait_for_decision)


async def init_database(url: str | None = None) -> DatabaseURL:
    """Connect Tortoise to `url` (default: `AGENT_RUNTIME__DB_URL`).

    Accepts the legacy URL forms (`sqlite:///`, `postgresql://`, and their
    `+aiosqlite` / `+asyncpg` spellings). The connection is visible to every task
    of the process, as the legacy engine was.
    """
    settings = get_settings()
    message_cache.configure(settings)
    return await connection.connect(settings, url)


async def init_db() -> list[str]:
    """Bring the schema up to date with the Aerich migrations (the legacy
    `create_all`); return the migrations applied. Call `init_database` first."""
    return await connection.migrate()


async def close_db() -> None:
    await stop_service_api_hub()
    await connection.disconnect()
