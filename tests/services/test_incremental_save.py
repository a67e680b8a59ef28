"""Incremental saves (and appends) store exactly what the legacy
delete-all-and-reinsert save would.

The reference model is the legacy semantics: after a save, loading the session
returns the saved list (in the loaded shape). Sequences of saves mix appends,
truncations, edits anywhere, whole replacements, dicts carrying extra keys or
explicit None values, and cold caches (another process wrote, or a restart).

Local only (not run through RemoteDatabaseService): it checks how the service
writes (which rows, the in-process message cache), and uses the newer API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_runtime.errors import InvalidInputError
from agent_runtime.services import database as svc
from agent_runtime.services.message_cache import message_cache
from models import Message

NOW = datetime(2026, 1, 2, tzinfo=UTC)

texts = st.sampled_from(["hi", "hello", "ok", "", "same", "x" * 30])
plain = st.builds(
    lambda r, c: {"role": r, "content": c}, st.sampled_from(["user", "assistant", "system"]), texts
)
tool_call = st.builds(
    lambda c: {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"call_{c}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    },
    st.integers(0, 2),
)
tool_result = st.builds(
    lambda c, t: {"role": "tool", "tool_call_id": f"call_{c}", "name": "f", "content": t},
    st.integers(0, 2),
    texts,
)
with_extras = st.builds(lambda m: {**m, "refusal": None, "token_count": 3}, plain)
message = st.one_of(plain, tool_call, tool_result, with_extras)


@st.composite
def edit(draw, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kind = draw(st.sampled_from(["append", "append", "append", "truncate", "change", "replace"]))
    if kind == "append" or not current:
        return current + draw(st.lists(message, min_size=1, max_size=4))
    if kind == "truncate":
        return current[: draw(st.integers(0, len(current) - 1))]
    if kind == "change":
        at = draw(st.integers(0, len(current) - 1))
        return [*current[:at], draw(message), *current[at + 1 :]]
    return draw(st.lists(message, max_size=6))


@st.composite
def save_sequences(draw) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], bool]]:
    """Steps of (how, what is sent, what should be stored after, cold cache?)."""
    steps, current = [], []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.integers(0, 3)) == 0:
            added = draw(st.lists(message, min_size=1, max_size=3))
            current = current + added
            steps.append(("append", [dict(m) for m in added], list(current), draw(st.booleans())))
        else:
            current = draw(edit(current))
            steps.append(("save", [dict(m) for m in current], list(current), draw(st.booleans())))
    return steps


def loaded_shape(saved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in saved:
        shaped = {"role": m["role"], "content": m.get("content")}
        shaped.update(
            {k: m[k] for k in ("name", "tool_call_id", "tool_calls") if m.get(k) is not None}
        )
        out.append(shaped)
    return out


@pytest.mark.timeout(600)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=save_sequences())
async def test_any_sequence_of_saves_loads_back_as_replace_all_would(db, steps):
    session_id = f"prop-{uuid.uuid4().hex}"
    for how, sent, saved, cold_cache in steps:
        if cold_cache:
            message_cache.discard(session_id)
        if how == "append":
            await svc.append_messages(db, session_id, sent, NOW)
        else:
            await svc.save_session(db, session_id, sent, NOW)

        loaded = await svc.load_session(db, session_id)
        assert loaded["messages"] == loaded_shape(saved)
        positions = (
            await Message.filter(session_id=session_id)
            .using_db(db)
            .order_by("position")
            .values_list("position", flat=True)
        )
        assert positions == list(range(len(saved)))


async def test_an_in_place_edit_of_an_already_saved_dict_is_stored(db):
    conversation = [{"role": "user", "content": "draft"}]
    await svc.save_session(db, "s1", conversation, NOW)

    conversation[0]["content"] = "final"  # the caller mutates its own list
    conversation.append({"role": "assistant", "content": "ok"})
    await svc.save_session(db, "s1", conversation, NOW)

    assert (await svc.load_session(db, "s1"))["messages"] == [
        {"role": "user", "content": "final"},
        {"role": "assistant", "content": "ok"},
    ]


async def test_appending_writes_only_the_new_message(db):
    conversation = [{"role": "user", "content": f"m{i}"} for i in range(50)]
    await svc.save_session(db, "s1", conversation, NOW)
    first_ids = (
        await Message.filter(session_id="s1")
        .using_db(db)
        .order_by("position")
        .values_list("id", flat=True)
    )

    await svc.save_session(db, "s1", [*conversation, {"role": "assistant", "content": "new"}], NOW)

    ids = (
        await Message.filter(session_id="s1")
        .using_db(db)
        .order_by("position")
        .values_list("id", flat=True)
    )
    assert ids[:50] == first_ids  # untouched rows
    assert len(ids) == 51


async def test_a_write_by_another_process_is_noticed(db):
    """Another worker's save changes the token: our cached copy is not trusted."""
    await svc.save_session(db, "s1", [{"role": "user", "content": "a"}], NOW)
    stale = message_cache.get("s1")
    message_cache.discard("s1")
    await svc.save_session(db, "s1", [{"role": "user", "content": "b"}], NOW)  # "other worker"
    message_cache.put("s1", stale.token, stale.messages)  # our stale view comes back

    await svc.save_session(
        db, "s1", [{"role": "user", "content": "a"}, {"role": "user", "content": "c"}], NOW
    )

    assert (await svc.load_session(db, "s1"))["messages"] == [
        {"role": "user", "content": "a"},
        {"role": "user", "content": "c"},
    ]


async def test_append_adds_after_the_stored_messages_and_sets_the_title(db):
    await svc.append_messages(db, "s1", [{"role": "system", "content": "be brief"}], NOW)
    await svc.append_messages(
        db,
        "s1",
        [{"role": "user", "content": "first question"}, {"role": "assistant", "content": "answer"}],
        NOW,
    )

    loaded = await svc.load_session(db, "s1")
    assert [m["content"] for m in loaded["messages"]] == ["be brief", "first question", "answer"]
    assert (await svc.get_session(db, "s1"))["title"] == "first question"


async def test_invalid_appended_message_changes_nothing(db):
    await svc.append_messages(db, "s1", [{"role": "user", "content": "kept"}], NOW)

    with pytest.raises(InvalidInputError, match=r"messages\[1\]\.role"):
        await svc.append_messages(
            db, "s1", [{"role": "user", "content": "x"}, {"role": "robot"}], NOW
        )

    assert (await svc.load_session(db, "s1"))["messages"] == [{"role": "user", "content": "kept"}]
