"""PostgreSQL LISTEN for the event hub, on a dedicated direct connection.

Not through a transaction pooler (LISTEN needs its own session: set
`AGENT_RUNTIME__DB_DIRECT_URL` when the main URL goes through PgBouncer). At
the first connect a self-test sends a NOTIFY the way the services do (through
the main connection) and waits for it; if it never arrives the hub keeps
polling the log, with a warning. The connection is checked every few seconds
and re-opened after an outage; each (re)connect is followed by a read of the
log, so nothing committed while it was down is missed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import suppress
from typing import Any, Protocol

import asyncpg
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.db.urls import DatabaseURL
from models.queries.events import NOTIFY_CHANNEL

__all__ = ["SELF_TEST_SECONDS", "Listening", "listen_forever"]

logger = logging.getLogger("agent_runtime.events")

SELF_TEST_SECONDS = 5.0
_CHECK_SECONDS = 5.0  # how often the idle connection is checked
_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0)  # reconnect back-off: back within 2 s of the database


class Listening(Protocol):
    """What the listener needs of the hub it wakes (the hub imports the listener, not
    the other way round)."""

    listen_on: DatabaseURL | None
    listening: bool  # set here while notifications arrive
    poll_seconds: float

    def connection(self) -> BaseDBAsyncClient: ...

    def poke(self) -> None: ...


async def _self_test(hub: Listening, arrived: dict[str, asyncio.Event]) -> bool:
    token = f"self-test:{secrets.token_hex(8)}"
    arrived[token] = asyncio.Event()
    try:
        await hub.connection().execute_query("SELECT pg_notify($1, $2)", [NOTIFY_CHANNEL, token])
        async with asyncio.timeout(SELF_TEST_SECONDS):
            await arrived[token].wait()
        return True
    except TimeoutError:
        return False
    finally:
        del arrived[token]


async def listen_forever(hub: Listening) -> None:
    assert hub.listen_on is not None
    arrived: dict[str, asyncio.Event] = {}
    tested = False
    failures = 0

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload in arrived:
            arrived[payload].set()
        else:
            hub.poke()

    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(**hub.listen_on.asyncpg_connect_args())
            await conn.add_listener(NOTIFY_CHANNEL, on_notify)
            if not tested:
                if not await _self_test(hub, arrived):
                    logger.warning(
                        "LISTEN/NOTIFY self-test failed: no notification arrived within %.0f s "
                        "(a transaction pooler between LISTEN and NOTIFY? set "
                        "AGENT_RUNTIME__DB_DIRECT_URL); polling the event log every %.2f s",
                        SELF_TEST_SECONDS,
                        hub.poll_seconds,
                    )
                    return
                tested = True
            if failures:
                logger.info("event notifications restored")
            failures = 0
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            hub.listening = True
            hub.poke()  # what committed while we were not listening
            while not lost.is_set():
                with suppress(TimeoutError):  # asyncio.timeout: see EventHub._read_forever
                    async with asyncio.timeout(_CHECK_SECONDS):
                        await lost.wait()
                if not lost.is_set():  # a silent network loss shows only when used
                    await conn.fetchval("SELECT 1", timeout=_CHECK_SECONDS)
            raise ConnectionError("the LISTEN connection was closed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            hub.listening = False
            if failures == 0:
                logger.warning("event notifications lost (%r); polling until reconnected", exc)
            failures += 1
        finally:
            hub.listening = False
            if conn is not None:
                with suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
                if not conn.is_closed():
                    conn.terminate()
        await asyncio.sleep(_RETRY_SECONDS[min(failures, len(_RETRY_SECONDS)) - 1])
