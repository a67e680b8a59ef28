"""Every import path callers use today keeps working, whatever moved behind it: the
documented ones (README, docs/) and the public names of the modules callers import."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from tests.fixtures.backends import ROOT

LEGACY_SERVICE_API = [
    "DatabaseService",
    "cleanup_old_sessions",
    "close_db",
    "delete_agent_context",
    "delete_pending_approval",
    "delete_session",
    "get_agent_switch_history",
    "get_connection",
    "get_messages_paginated",
    "get_pending_approvals",
    "get_session_stats",
    "hard_delete_old_sessions",
    "init_database",
    "init_db",
    "list_all_contexts",
    "list_all_sessions",
    "load_agent_context",
    "load_session",
    "save_agent_context",
    "save_pending_approval",
    "save_session",
    "update_approval_status",
    "update_session_description",
    "update_session_title",
    "wait_for_decision",
]

PUBLIC = {
    "agent_runtime.services.database": [
        *LEGACY_SERVICE_API,
        # beyond the legacy API, imported from this path by callers and tests
        "append_messages",
        "write_messages",
        "create_approval",
        "decide_approval",
        "claim_approval",
        "report_result",
        "current_database",
        "message_cache",
    ],
    "agent_runtime.service_api": LEGACY_SERVICE_API,
    "agent_runtime.services._common": ["atomic", "DB", "UNSET"],
    "agent_runtime.services.approvals": ["require_decision", "create_approval"],
    "agent_runtime.core.dependencies": [
        "DBSession",
        "DBService",
        "DBConnection",
        "Hub",
        "AppSettings",
        "get_db",
        "get_db_service",
    ],
    "agent_runtime.client": [
        "AgentRuntimeClient",
        "AsyncAgentRuntimeClient",
        "LoadedSession",
        "Page",
        "RemoteDatabaseService",
        "RetryPolicy",
        "StreamEvent",
    ],
    "agent_runtime.errors": ["AgentRuntimeError", "ConflictError", "NotFoundError"],
    "agent_runtime.integrations.openai_agents": [
        "ITEM_KEY",
        "RUN_STATE_KEY",
        "AgentRuntimeSession",
        "item_to_message",
        "load_run_state",
        "message_to_item",
        "resume_run",
        "run_with_approvals",
        "submit_interruptions",
    ],
    "agent_runtime.main": ["app", "create_app"],
    "agent_runtime.config": ["Settings", "get_settings"],
    "agent_runtime.db.config": [
        "APP_LABEL",
        "database_url",
        "direct_database_url",
        "tortoise_config",
    ],
    "agent_runtime.db.migrations": [
        "MIGRATIONS_DIR",
        "MIGRATIONS_DIR_ENV",
        "MigrationResult",
        "applied_on_connection",
        "apply_migrations",
        "check_migration_files",
        "display_path",
        "ensure_schema",
        "find_migration",
        "migrate_to",
        "migration_files",
        "pending_migrations",
        "pending_on_connection",
    ],
    "agent_runtime.events": ["EventHub", "running_hub", "wait_for_decision"],
    "agent_runtime.events.waits": ["MAX_WAIT_SECONDS", "wait_for_decision"],
    "models": [
        "DECISIONS",
        "OUTCOMES",
        "RUN_STATUSES",
        "AgentContext",
        "AgentSwitch",
        "ApprovalStatus",
        "ConsoleKey",
        "ConsoleSession",
        "Event",
        "EventType",
        "LoginFailure",
        "Message",
        "MessageRole",
        "PendingApproval",
        "Reviewer",
        "Session",
    ],
    "models.approval": ["DECISIONS", "OUTCOMES", "RUN_STATUSES", "ApprovalStatus"],
    "models.event": ["Event", "EventType"],
    "models.message": ["Message", "MessageRole"],
    "models.limits": ["ID_MAX", "NAME_MAX", "TITLE_MAX"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_the_public_names_of_a_module_still_import(module):
    imported = importlib.import_module(module)

    missing = [name for name in PUBLIC[module] if not hasattr(imported, name)]

    assert missing == []


def test_the_legacy_service_path_is_the_service_api_itself():
    """Not a copy: attributes set (or monkeypatched) through one path are seen through
    the other, as when the functions lived at `agent_runtime.services.database`."""
    from agent_runtime import service_api
    from agent_runtime.services import database

    assert database is service_api
    assert database.DatabaseService.wait_for_decision is service_api.wait_for_decision


def test_aerich_still_reads_tortoise_orm_where_pyproject_points(tmp_path):
    """`tool.aerich.tortoise_orm` is `agent_runtime.db.config.TORTOISE_ORM`, computed on
    access (a fresh interpreter: nothing imported before it)."""
    url = f"sqlite:///{tmp_path}/agent.db"
    code = "from agent_runtime.db.config import TORTOISE_ORM; print(sorted(TORTOISE_ORM))"

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"AGENT_RUNTIME__DB_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['apps',", "'connections',", "'timezone',", "'use_tz']"]
