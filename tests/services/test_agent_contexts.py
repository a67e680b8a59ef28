"""Agent contexts and switch history through the service API, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent_runtime.errors import InvalidInputError
from agent_runtime.services import database as svc

T0 = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)

HISTORY = [
    {
        "from": None,
        "to": "triage",
        "reason": "start",
        "timestamp": "2026-01-02T12:00:00+00:00",
        "metadata": {},
    },
    {
        "from": "triage",
        "to": "billing",
        "reason": "invoice question",
        "timestamp": "2026-01-02T15:05:00+03:00",
        "metadata": {"confidence": 0.9},
    },
    {
        "from": "billing",
        "to": "triage",
        "reason": None,
        "timestamp": "2026-01-02T12:10:00Z",
        "metadata": {},
    },
]


async def save_context(db, session_id="s1", history=HISTORY, **overrides):
    args = {
        "current_agent": "triage",
        "agent_history": history,
        "metadata": {"tenant": "acme"},
        "created_at": T0,
        "last_switch_at": T0 + timedelta(minutes=10),
        "switch_count": len(history),
    }
    args.update(overrides)
    await svc.save_agent_context(db, session_id, *args.values())


async def test_saved_context_loads_back_with_history_in_saved_order(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", [], T0)
    await save_context(db)

    context = await svc.load_agent_context(db, "s1")

    assert context == {
        "session_id": "s1",
        "current_agent": "triage",
        "agent_history": [
            {**HISTORY[0], "timestamp": "2026-01-02T12:00:00+00:00"},
            {**HISTORY[1], "timestamp": "2026-01-02T12:05:00+00:00"},
            {**HISTORY[2], "timestamp": "2026-01-02T12:10:00+00:00"},
        ],
        "metadata": {"tenant": "acme"},
        "created_at": T0,
        "last_switch_at": T0 + timedelta(minutes=10),
        "switch_count": 3,
    }


async def test_saving_again_replaces_the_history(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", [], T0)
    await save_context(db)
    await save_context(
        db, history=HISTORY[:1], current_agent="billing", switch_count=1, last_switch_at=None
    )

    context = await svc.load_agent_context(db, "s1")

    assert context["current_agent"] == "billing"
    assert [h["to"] for h in context["agent_history"]] == ["triage"]
    assert context["switch_count"] == 1
    assert context["last_switch_at"] is None
    assert await svc.list_all_contexts(db) == ["s1"]


async def test_context_for_a_missing_session_is_not_saved(legacy, caplog):
    svc, db = legacy
    await save_context(db, session_id="ghost")

    assert await svc.load_agent_context(db, "ghost") is None
    assert "ghost" in caplog.text


async def test_context_of_a_soft_deleted_session_is_hidden(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", [], T0)
    await svc.save_session(db, "s2", [], T0)
    await save_context(db, "s1")
    await save_context(db, "s2")
    await svc.delete_session(db, "s1")

    assert await svc.load_agent_context(db, "s1") is None
    assert await svc.get_agent_switch_history(db, "s1") == []
    assert await svc.list_all_contexts(db) == ["s2"]


async def test_switch_history_is_newest_first_and_limited(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", [], T0)
    await save_context(db)

    history = await svc.get_agent_switch_history(db, "s1")
    limited = await svc.get_agent_switch_history(db, "s1", limit=2)

    assert [(h["from_agent"], h["to_agent"]) for h in history] == [
        ("billing", "triage"),
        ("triage", "billing"),
        (None, "triage"),
    ]
    assert history[1]["switched_at"] == T0 + timedelta(minutes=5)
    assert history[1]["switched_at"].utcoffset() == timedelta(0)
    assert history[1]["metadata"] == {"confidence": 0.9}
    assert history[1]["reason"] == "invoice question"
    assert all(isinstance(h["id"], str) and h["id"] for h in history)
    assert limited == history[:2]


async def test_switches_sharing_a_timestamp_keep_reverse_saved_order(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", [], T0)
    same_time = [{"from": f"a{i}", "to": f"a{i + 1}", "timestamp": T0} for i in range(5)]
    await save_context(db, history=same_time)

    history = await svc.get_agent_switch_history(db, "s1")

    assert [h["to_agent"] for h in history] == ["a5", "a4", "a3", "a2", "a1"]


async def test_delete_agent_context(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", [], T0)
    await save_context(db)

    assert await svc.delete_agent_context(db, "s1") is True
    assert await svc.delete_agent_context(db, "s1") is False
    assert await svc.load_agent_context(db, "s1") is None
    assert await svc.load_session(db, "s1") is not None


@pytest.mark.parametrize(
    "overrides",
    [
        {"current_agent": ""},
        {"current_agent": "x" * 101},
        {"history": [{"from": "a"}]},  # no "to"
        {"history": [{"to": "b", "timestamp": "not a time"}]},
        {"history": "triage"},
        {"metadata": ["not", "a", "dict"]},
        {"switch_count": -1},
    ],
)
async def test_invalid_context_is_rejected_and_changes_nothing(legacy, overrides):
    svc, db = legacy
    await svc.save_session(db, "s1", [], T0)
    await save_context(db)
    before = await svc.load_agent_context(db, "s1")

    with pytest.raises(InvalidInputError):
        await save_context(db, **overrides)

    assert await svc.load_agent_context(db, "s1") == before


async def test_naive_and_offset_context_datetimes_are_utc(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", [], T0)
    await save_context(
        db,
        created_at=datetime(2026, 1, 2, 12, 0),
        last_switch_at=datetime(2026, 1, 2, 7, 0, tzinfo=timezone(timedelta(hours=-5))),
    )

    context = await svc.load_agent_context(db, "s1")

    assert context["created_at"] == T0
    assert context["last_switch_at"] == T0
    assert context["last_switch_at"].utcoffset() == timedelta(0)
