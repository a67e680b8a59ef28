"""PostgreSQL LISTEN/NOTIFY for the event hub: wakes from notifications, announces
only what committed, and falls back to polling when the self-test fails."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent_runtime.db.urls import parse_db_url
from agent_runtime.events.hub import running_hub
from agent_runtime.events.listener import SELF_TEST_SECONDS
from agent_runtime.services._common import atomic
from agent_runtime.services.approvals import create_approval, decide_approval

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

SLOW_POLL = 30.0  # so slow that only a notification can wake within the test


async def until(condition, seconds: float = SELF_TEST_SECONDS + 5) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_committed_decision_is_announced_to_a_listening_hub(db, backend):
    await create_approval(db, "s1", "c1", "rm", {})
    async with running_hub(
        backend.database, poll_seconds=SLOW_POLL, listen_on=backend.database
    ) as hub:
        await until(lambda: hub.listening)
        assert hub.mode == "listen"
        with hub.watch("c1") as changed:
            await decide_approval(db, "c1", "approved")
            await asyncio.wait_for(changed.wait(), 5)  # long before the next poll


async def test_a_rolled_back_change_is_never_announced(db, backend):
    await create_approval(db, "s1", "c1", "rm", {})
    async with running_hub(
        backend.database, poll_seconds=SLOW_POLL, listen_on=backend.database
    ) as hub:
        await until(lambda: hub.listening)
        with hub.watch("c1") as changed:
            with pytest.raises(RuntimeError):
                async with atomic(db) as conn:
                    await decide_approval(conn, "c1", "approved")
                    raise RuntimeError("the caller fails after the decision")
            await asyncio.sleep(1)
            assert not changed.is_set()
            await decide_approval(db, "c1", "rejected")  # the one that commits
            await asyncio.wait_for(changed.wait(), 5)


async def test_without_notifications_the_hub_polls_the_log_and_says_so(
    db, backend, databases, caplog
):
    # LISTEN on another database: a NOTIFY never crosses databases, as it never
    # crosses a transaction pooler, so the self-test fails.
    elsewhere = parse_db_url(databases.empty("postgres"))
    await create_approval(db, "s1", "c1", "rm", {})
    with caplog.at_level(logging.WARNING, logger="agent_runtime.events"):
        async with running_hub(backend.database, poll_seconds=0.05, listen_on=elsewhere) as hub:
            await until(lambda: "self-test failed" in caplog.text)
            assert hub.mode == "poll"
            with hub.watch("c1") as changed:
                await decide_approval(db, "c1", "approved")
                await asyncio.wait_for(changed.wait(), 5)
    assert "AGENT_RUNTIME__DB_DIRECT_URL" in caplog.text
