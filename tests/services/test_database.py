"""The legacy-compatible surface: `DatabaseService` and the module-level lifecycle."""

from __future__ import annotations

import functools
import inspect
from datetime import UTC, datetime

import pytest

from agent_runtime.client import RemoteDatabaseService
from agent_runtime.services import database
from agent_runtime.services.database import DatabaseService

# The legacy async DatabaseService: method -> parameters after `db`, with defaults.
LEGACY_API = {
    "save_session": ["session_id", "messages", "last_activity"],
    "load_session": ["session_id"],
    "delete_session": ["session_id", "soft=True"],
    "list_all_sessions": ["include_deleted=False"],
    "get_messages_paginated": ["session_id", "page=1", "page_size=50"],
    "get_session_stats": ["session_id"],
    "update_session_title": ["session_id", "title"],
    "update_session_description": ["session_id", "description"],
    "save_agent_context": [
        "session_id",
        "current_agent",
        "agent_history",
        "metadata",
        "created_at",
        "last_switch_at",
        "switch_count",
    ],
    "load_agent_context": ["session_id"],
    "delete_agent_context": ["session_id"],
    "list_all_contexts": [],
    "get_agent_switch_history": ["session_id", "limit=100"],
    "cleanup_old_sessions": ["max_age_hours=24"],
    "hard_delete_old_sessions": ["days_old=30"],
    "save_pending_approval": ["session_id", "call_id", "tool_name", "arguments", "reason=None"],
    "get_pending_approvals": ["session_id"],
    "delete_pending_approval": ["call_id"],
    "update_approval_status": ["call_id", "status"],
}


def _positional_params(func) -> list[str]:
    """Parameters after `db` that callers may pass positionally; any newer ones
    must be keyword-only, so legacy positional calls keep their meaning."""
    out = []
    for p in list(inspect.signature(func).parameters.values())[1:]:
        if p.kind is p.KEYWORD_ONLY:
            assert p.default is not p.empty, f"new parameter {p.name} needs a default"
            continue
        assert p.kind is p.POSITIONAL_OR_KEYWORD, f"{func.__name__}.{p.name}"
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return out


@pytest.mark.parametrize("name", sorted(LEGACY_API))
def test_every_legacy_method_exists_with_the_same_arguments(name):
    function = getattr(database, name)
    method = getattr(DatabaseService(), name)

    assert inspect.iscoroutinefunction(function)
    assert method is function
    assert next(iter(inspect.signature(function).parameters)) == "db"
    assert _positional_params(function) == LEGACY_API[name]


async def test_class_methods_work_like_the_legacy_service(legacy):
    service, db = legacy

    await service.save_session(db, "s1", [{"role": "user", "content": "hi"}], datetime.now(UTC))
    await service.save_pending_approval(db, "s1", "call_1", "tool", {"a": 1})

    assert (await service.load_session(db, "s1"))["messages"] == [{"role": "user", "content": "hi"}]
    assert [a["call_id"] for a in await service.get_pending_approvals(db, "s1")] == ["call_1"]


@pytest.mark.parametrize("name", sorted(LEGACY_API))
def test_the_remote_service_has_every_legacy_method_with_the_same_arguments(name):
    method = getattr(RemoteDatabaseService, name)

    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters)[:2] == ["self", "db"]
    assert _positional_params(functools.partial(method, None)) == LEGACY_API[name]


async def test_init_database_init_db_and_close_db_lifecycle(databases, backend):
    url = databases.empty(backend.name)

    parsed = await database.init_database(url)
    try:
        applied = await database.init_db()
        db = database.get_connection()
        await database.save_session(db, "s1", [], datetime.now(UTC))
        assert (await database.load_session(db, "s1"))["session_id"] == "s1"
        assert await database.init_db() == []  # idempotent
    finally:
        await database.close_db()

    assert parsed.dialect == backend.name
    assert applied and applied[0].startswith("0_")
    with pytest.raises(RuntimeError, match="init_database"):
        database.get_connection()
