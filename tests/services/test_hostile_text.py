"""Text neither backend can store is refused, the same way on both, and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_runtime.errors import InvalidInputError

NOW = datetime(2026, 1, 2, tzinfo=UTC)
BAD_TEXT = ["a\x00b", "\ud800", "x\udfff"]


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize(
    "message",
    [
        lambda t: {"role": "user", "content": t},
        lambda t: {"role": "tool", "content": "ok", "name": t},
        lambda t: {"role": "user", "content": "ok", "metadata": {"k": t}},
        lambda t: {"role": "user", "content": "ok", "metadata": {t: 1}},
        lambda t: {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": t}}],
        },
    ],
)
async def test_unstorable_text_in_messages_is_rejected(legacy, bad, message):
    svc, db = legacy
    await svc.save_session(db, "s1", [{"role": "user", "content": "kept"}], NOW)

    with pytest.raises(InvalidInputError, match="NUL character or an unpaired surrogate"):
        await svc.save_session(db, "s1", [message(bad)], NOW)

    assert (await svc.load_session(db, "s1"))["messages"] == [{"role": "user", "content": "kept"}]


@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_unstorable_ids_are_rejected_on_reads_and_writes(legacy, bad):
    svc, db = legacy
    with pytest.raises(InvalidInputError):
        await svc.load_session(db, bad)
    with pytest.raises(InvalidInputError):
        await svc.save_session(db, bad, [], NOW)
    with pytest.raises(InvalidInputError):
        await svc.get_pending_approvals(db, bad)
    with pytest.raises(InvalidInputError):
        await svc.update_approval_status(db, bad, "approved")


@pytest.mark.parametrize(
    "arguments",
    [{"x": float("nan")}, {"x": float("inf")}, {"x": object()}, {1: "int key"}],
)
async def test_non_json_arguments_are_rejected(legacy, arguments):
    svc, db = legacy
    with pytest.raises(InvalidInputError):
        await svc.save_pending_approval(db, "s1", "c1", "tool", arguments)
    assert await svc.get_pending_approvals(db, "s1") == []


async def test_json_nested_too_deep_is_rejected_and_normal_nesting_kept(legacy):
    svc, db = legacy
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["n"] = {}
        node = node["n"]
    ok = {"a": [{"b": [1, 2.5, True, None, "text \u00e9 \U0001f600"]}]}

    with pytest.raises(InvalidInputError, match="nested deeper"):
        await svc.save_pending_approval(db, "s1", "c1", "tool", deep)
    await svc.save_pending_approval(db, "s1", "c2", "tool", ok)

    assert (await svc.get_pending_approvals(db, "s1"))[0]["arguments"] == ok


async def test_sql_looking_text_is_stored_and_returned_literally(legacy):
    svc, db = legacy
    sneaky = "'; DROP TABLE sessions; --"
    await svc.save_session(db, sneaky, [{"role": "user", "content": sneaky}], NOW)

    loaded = await svc.load_session(db, sneaky)

    assert loaded["messages"] == [{"role": "user", "content": sneaky}]
    assert await svc.list_all_sessions(db) == [sneaky]
