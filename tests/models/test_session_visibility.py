"""Soft-delete visibility is defined once, in models/session.py, and used everywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from tortoise.backends.base.client import BaseDBAsyncClient

from models import AgentContext, AgentSwitch, Message, MessageRole, Session
from models.session import VISIBLE_SQL

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)

# The rule spelled by hand, in the ORM or in SQL.
HAND_WRITTEN = re.compile(r"deleted_at__isnull|deleted_at\s+IS\s+NULL", re.IGNORECASE)


async def _two_sessions() -> None:
    await Session.create(id="live", created_at=T0, last_activity=T0)
    await Session.create(id="gone", created_at=T0, last_activity=T0, deleted_at=T0)
    for sid in ("live", "gone"):
        await Message.create(session_id=sid, position=0, role=MessageRole.USER, timestamp=T0)
        context = await AgentContext.create(
            session_id=sid, current_agent="a", created_at=T0, updated_at=T0
        )
        await AgentSwitch.create(context=context, position=0, to_agent="a", switched_at=T0)


async def test_visible_excludes_soft_deleted_sessions_and_the_default_manager_does_not(
    db: BaseDBAsyncClient,
) -> None:
    await _two_sessions()

    assert await Session.visible.all().values_list("id", flat=True) == ["live"]
    assert await Session.visible.filter(id="gone").exists() is False
    assert await Session.visible.filter(id="live").using_db(db).exists() is True
    assert sorted(await Session.all().values_list("id", flat=True)) == ["gone", "live"]
    assert sorted(await Session.filter().values_list("id", flat=True)) == ["gone", "live"]
    assert await Session.filter(id="gone").exists() is True


async def test_visible_through_a_relation(db: BaseDBAsyncClient) -> None:
    await _two_sessions()

    messages = Message.filter(Session.visible_through("session")).using_db(db)
    switches = AgentSwitch.filter(Session.visible_through("context__session")).using_db(db)
    assert await messages.values_list("session_id", flat=True) == ["live"]
    assert await switches.values_list("context__session_id", flat=True) == ["live"]
    assert await Message.all().using_db(db).count() == 2


async def test_visible_sql_selects_the_same_rows(db: BaseDBAsyncClient) -> None:
    await _two_sessions()

    _, rows = await db.execute_query(f"SELECT id FROM sessions WHERE {VISIBLE_SQL} ORDER BY id")
    assert [row[0] for row in rows] == await Session.visible.all().values_list("id", flat=True)


def test_no_module_spells_the_visibility_rule_by_hand() -> None:
    """Everything under agent_runtime/ (and models/queries/) goes through
    `Session.visible`, `Session.visible_through()` or `VISIBLE_SQL`."""
    sources = [*(ROOT / "agent_runtime").rglob("*.py"), *(ROOT / "models").rglob("*.py")]
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        if path != ROOT / "models" / "session.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if HAND_WRITTEN.search(line)
    ]
    assert offenders == []


def test_the_source_check_would_catch_a_hand_written_filter() -> None:
    assert HAND_WRITTEN.search("Session.filter(id=x, deleted_at__isnull=True)")
    assert HAND_WRITTEN.search("Message.filter(session__deleted_at__isnull=True)")
    assert HAND_WRITTEN.search('"SELECT 1 FROM sessions WHERE deleted_at is null"')
    assert not HAND_WRITTEN.search("Session.visible.filter(id=x)")
