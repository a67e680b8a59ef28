"""Property-based fuzzing of the service functions with hostile input.

Whatever a caller passes, a service function either works or raises a clear
domain error (`AgentRuntimeError`); never a driver error, never a crash.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_runtime.errors import AgentRuntimeError
from agent_runtime.services import database as svc

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "'; DROP TABLE sessions; --",
            '" OR 1=1 --',
            "\x00",
            "a\x00b",
            "\ud800",
            "%s%s%n",
            "${jndi:ldap://x}",
            "\u202e",
            "\U0001d54f" * 10,
            "x" * 300,
            "",
        ]
    ),
)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), hostile_text
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)
    ),
    max_leaves=20,
)
odd_datetimes = st.one_of(
    st.datetimes(timezones=st.just(None)),
    st.datetimes(
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))]
        )
    ),
    st.sampled_from(["2026-13-01T00:00:00", "2026-01-01T25:00:00", "yesterday", "", 0, None]),
)
anything = st.one_of(hostile_text, json_values, odd_datetimes)
messages = st.one_of(
    st.lists(
        st.fixed_dictionaries(
            {
                "role": st.one_of(
                    st.sampled_from(["user", "assistant", "tool", "system"]), hostile_text
                )
            },
            optional={
                "content": st.one_of(hostile_text, json_values),
                "name": anything,
                "tool_call_id": anything,
                "tool_calls": json_values,
                "token_count": st.one_of(st.integers(), anything),
                "metadata": json_values,
                "timestamp": odd_datetimes,
            },
        ),
        max_size=4,
    ),
    anything,
)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def call(coro: Any) -> None:
    with contextlib.suppress(AgentRuntimeError):  # a clear refusal is a fine answer
        await coro


@FUZZ
@given(session_id=hostile_text, msgs=messages, last_activity=odd_datetimes)
async def test_saving_hostile_sessions_only_succeeds_or_refuses(
    db, session_id, msgs, last_activity
):
    await call(svc.save_session(db, session_id, msgs, last_activity))
    await call(svc.append_messages(db, session_id, msgs, last_activity))
    await call(svc.load_session(db, session_id))
    await call(svc.get_messages_paginated(db, session_id, 1, 10))
    await call(svc.get_session_stats(db, session_id))
    await call(svc.update_session_title(db, session_id, session_id))
    await call(svc.delete_session(db, session_id))


@FUZZ
@given(
    session_id=hostile_text,
    call_id=hostile_text,
    tool=hostile_text,
    arguments=json_values,
    reason=st.one_of(st.none(), hostile_text),
    status=hostile_text,
)
async def test_hostile_approvals_only_succeed_or_refuse(
    db, session_id, call_id, tool, arguments, reason, status
):
    await call(svc.save_pending_approval(db, session_id, call_id, tool, arguments, reason))
    await call(svc.get_pending_approvals(db, session_id))
    await call(svc.update_approval_status(db, call_id, status))
    await call(svc.decide_approval(db, call_id, status, decided_by=tool))
    await call(svc.delete_pending_approval(db, call_id))


@FUZZ
@given(
    agent=hostile_text,
    history=st.one_of(st.lists(json_values, max_size=3), anything),
    metadata=json_values,
    created=odd_datetimes,
    count=st.one_of(st.integers(), anything),
)
async def test_hostile_agent_contexts_only_succeed_or_refuse(
    db, agent, history, metadata, created, count
):
    await svc.save_session(db, "fuzz-ctx", [], datetime.now(UTC))
    await call(
        svc.save_agent_context(db, "fuzz-ctx", agent, history, metadata, created, created, count)
    )
    await call(svc.load_agent_context(db, "fuzz-ctx"))
    await call(svc.get_agent_switch_history(db, "fuzz-ctx", 5))


@pytest.mark.parametrize("value", [2**31, 2**63, -1, 1.5, True, "10"])
async def test_out_of_range_numbers_are_refused_not_overflowed(db, value):
    with pytest.raises(AgentRuntimeError):
        await svc.save_session(
            db, "s1", [{"role": "user", "content": "x", "token_count": value}], datetime.now(UTC)
        )
