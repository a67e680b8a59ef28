"""Sessions and messages through the service API, on every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from tortoise import Tortoise

from agent_runtime.errors import InvalidInputError
from agent_runtime.services import database as svc
from agent_runtime.services import save as save_module
from models import Message, Session

T0 = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
PLUS3 = timezone(timedelta(hours=3))

CONVERSATION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "weather", "content": "18C"},
    {"role": "assistant", "content": "It is 18C."},
]


def assert_aware_utc(value: datetime) -> None:
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)


async def test_saved_session_loads_back_in_the_legacy_shape(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", CONVERSATION, T0)

    loaded = await svc.load_session(db, "s1")

    assert loaded == {
        "session_id": "s1",
        "messages": CONVERSATION,
        "last_activity": T0,
        "created_at": loaded["created_at"],
    }
    assert_aware_utc(loaded["created_at"])
    assert_aware_utc(loaded["last_activity"])


async def test_tool_calls_are_any_json_list_locally_and_remotely(legacy):
    svc, db = legacy
    messages = [
        {"role": "assistant", "content": None, "tool_calls": [{"anything": 1}, "text", [2]]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {}}]},
    ]
    await svc.save_session(db, "s1", messages, T0)

    assert (await svc.load_session(db, "s1"))["messages"] == messages


async def test_messages_come_back_in_saved_order_even_with_identical_timestamps(legacy):
    svc, db = legacy
    messages = [{"role": "user", "content": f"m{i}", "timestamp": T0} for i in range(60)]
    messages.reverse()  # order that no timestamp or id could reproduce by accident
    await svc.save_session(db, "s1", messages, T0)

    loaded = await svc.load_session(db, "s1")

    assert [m["content"] for m in loaded["messages"]] == [m["content"] for m in messages]


async def test_save_replaces_the_message_list(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", CONVERSATION, T0)
    await svc.save_session(db, "s1", CONVERSATION[:2], T0 + timedelta(minutes=1))

    loaded = await svc.load_session(db, "s1")

    assert loaded["messages"] == CONVERSATION[:2]
    assert loaded["last_activity"] == T0 + timedelta(minutes=1)


async def test_title_is_set_from_the_first_user_message_and_kept(legacy):
    svc, db = legacy
    long_question = "why " * 300
    await svc.save_session(db, "s1", [{"role": "user", "content": long_question}], T0)
    await svc.save_session(db, "s1", [{"role": "user", "content": "another"}], T0)

    session = await Session.get(id="s1").using_db(db)
    assert session.title == long_question[:500]


async def test_invalid_message_is_rejected_and_changes_nothing(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", CONVERSATION, T0)
    bad = [*CONVERSATION, {"role": "robot", "content": "beep"}]

    with pytest.raises(InvalidInputError, match=r"messages\[5\]\.role"):
        await svc.save_session(db, "s1", bad, T0 + timedelta(hours=1))

    loaded = await svc.load_session(db, "s1")
    assert loaded["messages"] == CONVERSATION
    assert loaded["last_activity"] == T0


@pytest.mark.parametrize(
    "bad",
    [
        "not a list",
        [["role", "user"]],
        [{"role": "user", "content": 42}],
        [{"role": "assistant", "content": None, "tool_calls": "call_1"}],
        [{"role": "user", "content": "x", "token_count": -1}],
        [{"role": "user", "content": "x", "timestamp": "yesterday"}],
    ],
)
async def test_malformed_messages_raise_invalid_input(legacy, bad):
    svc, db = legacy
    with pytest.raises(InvalidInputError):
        await svc.save_session(db, "s1", bad, T0)
    assert await svc.load_session(db, "s1") is None


# Local only: checks the transaction inside the service (over REST: test_transactions.py).
async def test_save_is_atomic_when_the_database_rejects_a_row(db):
    await svc.save_session(db, "s1", CONVERSATION, T0)
    too_long_name = [{"role": "tool", "content": "x", "name": "n" * 256}]

    with pytest.raises(InvalidInputError):
        await svc.save_session(db, "s1", too_long_name, T0 + timedelta(hours=1))

    assert (await svc.load_session(db, "s1"))["messages"] == CONVERSATION


# Local only: patches the service's internals to fail midway.
async def test_save_rolls_back_everything_when_an_insert_fails_midway(db, monkeypatch):
    await svc.save_session(db, "s1", CONVERSATION, T0)

    async def failing_insert(*args, **kwargs):
        raise RuntimeError("disk full")

    # Fails after the session row was updated and the old messages were deleted.
    monkeypatch.setattr(save_module, "insert_messages", failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        await svc.save_session(db, "s1", CONVERSATION[:1], T0 + timedelta(hours=1))
    monkeypatch.undo()

    loaded = await svc.load_session(db, "s1")
    assert loaded["messages"] == CONVERSATION
    assert loaded["last_activity"] == T0


async def test_offset_datetimes_are_stored_as_the_same_instant(legacy):
    svc, db = legacy
    in_moscow = datetime(2026, 1, 2, 15, 0, tzinfo=PLUS3)  # == T0
    await svc.save_session(db, "s1", [], in_moscow)
    await svc.save_session(db, "s2", [], T0 + timedelta(minutes=30))

    loaded = await svc.load_session(db, "s1")
    assert loaded["last_activity"] == T0
    assert loaded["last_activity"].utcoffset() == timedelta(0)
    # An ordering that string comparison of '+03:00' text would get wrong:
    assert await svc.list_all_sessions(db) == ["s2", "s1"]


async def test_naive_datetimes_are_taken_as_utc(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", [], datetime(2026, 1, 2, 12, 0))

    loaded = await svc.load_session(db, "s1")
    assert loaded["last_activity"] == T0
    assert_aware_utc(loaded["last_activity"])


async def test_soft_deleted_session_is_invisible_unless_asked_for(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", CONVERSATION, T0)
    await svc.save_session(db, "s2", CONVERSATION, T0)

    assert await svc.delete_session(db, "s1") is True
    assert await svc.delete_session(db, "s1") is False  # already deleted

    assert await svc.load_session(db, "s1") is None
    assert await svc.get_session_stats(db, "s1") is None
    assert await svc.get_messages_paginated(db, "s1") == []
    assert await svc.list_all_sessions(db) == ["s2"]
    assert sorted(await svc.list_all_sessions(db, include_deleted=True)) == ["s1", "s2"]
    session = await Session.get(id="s1").using_db(db)
    assert session.is_active is False
    assert_aware_utc(session.deleted_at)


async def test_saving_a_soft_deleted_session_brings_it_back(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", CONVERSATION, T0)
    await svc.delete_session(db, "s1")

    await svc.save_session(db, "s1", CONVERSATION[:1], T0)

    assert (await svc.load_session(db, "s1"))["messages"] == CONVERSATION[:1]


async def test_hard_delete_removes_session_messages_context_and_approvals(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", CONVERSATION, T0)
    await svc.save_agent_context(
        db, "s1", "planner", [{"from": None, "to": "planner"}], {}, T0, T0, 1
    )
    await svc.save_pending_approval(db, "s1", "call_1", "weather", {"city": "Paris"})

    assert await svc.delete_session(db, "s1", soft=False) is True
    assert await svc.delete_session(db, "s1", soft=False) is False

    assert await svc.list_all_sessions(db, include_deleted=True) == []
    assert await Message.all().using_db(db).count() == 0
    assert await svc.load_agent_context(db, "s1") is None
    assert await svc.get_pending_approvals(db, "s1") == []


async def test_unknown_session_reads_return_none_or_empty(legacy):
    svc, db = legacy
    assert await svc.load_session(db, "nope") is None
    assert await svc.get_session_stats(db, "nope") is None
    assert await svc.get_messages_paginated(db, "nope") == []
    assert await svc.update_session_title(db, "nope", "t") is False
    assert await svc.update_session_description(db, "nope", "d") is False
    assert await svc.delete_session(db, "nope") is False


async def test_messages_are_paginated_in_order_with_one_indexed_pages(legacy):
    svc, db = legacy
    messages = [{"role": "user", "content": f"m{i}"} for i in range(7)]
    await svc.save_session(db, "s1", messages, T0)

    pages = [await svc.get_messages_paginated(db, "s1", p, 3) for p in (1, 2, 3, 4)]

    assert [[m["content"] for m in page] for page in pages] == [
        ["m0", "m1", "m2"],
        ["m3", "m4", "m5"],
        ["m6"],
        [],
    ]
    assert await svc.get_messages_paginated(db, "s1") == messages


@pytest.mark.parametrize(("page", "size"), [(0, 10), (1, 0), (-1, 5), ("1", 5)])
async def test_invalid_pagination_is_rejected(legacy, page, size):
    svc, db = legacy
    with pytest.raises(InvalidInputError):
        await svc.get_messages_paginated(db, "s1", page, size)


async def test_session_stats_count_messages_and_tokens(legacy):
    svc, db = legacy
    messages = [
        {"role": "user", "content": "a", "token_count": 5, "timestamp": T0 - timedelta(minutes=2)},
        {
            "role": "assistant",
            "content": "b",
            "token_count": 7,
            "timestamp": T0 - timedelta(minutes=1),
        },
        {"role": "user", "content": "c"},
    ]
    await svc.save_session(db, "s1", messages, T0)
    await svc.save_session(db, "empty", [], T0)

    stats = await svc.get_session_stats(db, "s1")
    empty = await svc.get_session_stats(db, "empty")

    assert stats["session_id"] == "s1"
    assert stats["message_count"] == 3
    assert stats["total_tokens"] == 12
    assert stats["last_activity"] == T0
    assert_aware_utc(stats["last_message_at"])
    assert stats["last_message_at"] > T0 - timedelta(minutes=1)  # "c" was stamped now
    assert empty["message_count"] == 0
    assert empty["total_tokens"] == 0
    assert empty["last_message_at"] is None


async def test_title_and_description_updates(legacy):
    svc, db = legacy
    await svc.save_session(db, "s1", [], T0)

    assert await svc.update_session_title(db, "s1", "t" * 600) is True
    assert await svc.update_session_description(db, "s1", "about weather") is True

    session = await Session.get(id="s1").using_db(db)
    assert session.title == "t" * 500
    assert session.description == "about weather"


async def test_list_all_sessions_is_most_recent_first(legacy):
    svc, db = legacy
    for i, sid in enumerate(["a", "b", "c"]):
        await svc.save_session(db, sid, [], T0 + timedelta(minutes=i))
    await svc.save_session(db, "a", [], T0 + timedelta(hours=1))

    assert await svc.list_all_sessions(db) == ["a", "c", "b"]


async def test_cleanup_soft_deletes_idle_sessions_only(legacy):
    svc, db = legacy
    now = datetime.now(UTC)
    await svc.save_session(db, "idle", [], now - timedelta(hours=30))
    await svc.save_session(db, "recent", [], now - timedelta(hours=2))
    # Same instant as 30 h ago, given with an offset: must compare as an instant.
    await svc.save_session(db, "idle_offset", [], (now - timedelta(hours=30)).astimezone(PLUS3))

    assert await svc.cleanup_old_sessions(db, 24) == 2
    assert await svc.cleanup_old_sessions(db, 24) == 0

    assert await svc.list_all_sessions(db) == ["recent"]


async def test_hard_delete_old_sessions_removes_long_soft_deleted_ones(legacy):
    svc, db = legacy
    await svc.save_session(db, "old", CONVERSATION, T0)
    await svc.save_session(db, "fresh", CONVERSATION, T0)
    await svc.save_session(db, "live", CONVERSATION, T0)
    await svc.save_pending_approval(db, "old", "call_old", "weather", {})
    await svc.delete_session(db, "old")
    await svc.delete_session(db, "fresh")
    long_ago = datetime.now(UTC) - timedelta(days=40)
    await Session.filter(id="old").using_db(db).update(deleted_at=long_ago)

    assert await svc.hard_delete_old_sessions(db, 30) == 1

    assert sorted(await svc.list_all_sessions(db, include_deleted=True)) == ["fresh", "live"]
    assert await svc.get_pending_approvals(db, "old") == []


@pytest.mark.parametrize("bad", [-1, "24", None])
async def test_retention_rejects_invalid_ages(legacy, bad):
    svc, db = legacy
    with pytest.raises(InvalidInputError):
        await svc.cleanup_old_sessions(db, bad)
    with pytest.raises(InvalidInputError):
        await svc.hard_delete_old_sessions(db, bad)


@pytest.mark.parametrize("bad", ["", None, "x" * 256, 7])
async def test_invalid_session_ids_are_rejected_on_save(legacy, bad):
    svc, db = legacy
    with pytest.raises(InvalidInputError):
        await svc.save_session(db, bad, [], T0)


# Local only: races transactions on separate Tortoise connections.
async def test_concurrent_saves_of_one_new_session_leave_one_complete_version(db, backend):
    connection = Tortoise.get_connection(backend.name)
    versions = [
        [{"role": "user", "content": f"v{v}-m{i}"} for i in range(v + 1)] for v in range(12)
    ]

    async def save(messages):
        async with connection._in_transaction() as tx:
            await svc.save_session(tx, "shared", messages, T0)

    results = await asyncio.gather(*(save(m) for m in versions), return_exceptions=True)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert (await svc.load_session(db, "shared"))["messages"] in versions
    assert await svc.list_all_sessions(db) == ["shared"]


# Local only: writes rows directly, as the legacy import may leave them.
async def test_load_reads_the_session_even_when_its_first_message_is_not_at_position_0(db):
    # Not something the service writes; a hand-edited database must still load.
    await svc.save_session(db, "s1", [{"role": "user", "content": "a"}, {"role": "user"}], T0)
    await Message.filter(session_id="s1", position=0).using_db(db).delete()

    loaded = await svc.load_session(db, "s1")

    assert loaded is not None and loaded["messages"] == [{"role": "user", "content": None}]
    assert loaded["created_at"].tzinfo is not None and loaded["last_activity"] == T0
