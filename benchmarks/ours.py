"""This project, through its public service API only (`agent_runtime.services.database`),
the way a script or worker outside FastAPI uses it: one connection for the process."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.services import database
from benchmarks.data import Message

__all__ = ["Ours", "OursAppend"]


class Ours:
    name = "ours"

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: BaseDBAsyncClient | None = None

    @property
    def _db(self) -> BaseDBAsyncClient:
        assert self._conn is not None, "call open() first"
        return self._conn

    async def open(self) -> None:
        await database.init_database(self._url)
        await database.init_db()  # applies the Aerich migrations to the fresh database
        self._conn = database.get_connection()

    async def close(self) -> None:
        self._conn = None
        await database.close_db()

    async def seed(self, session_id: str, messages: list[Message]) -> None:
        await self.save(session_id, messages)

    async def save(self, session_id: str, messages: list[Message]) -> None:
        await database.save_session(self._db, session_id, messages, datetime.now(UTC))

    async def load(self, session_id: str) -> dict[str, Any] | None:
        return await database.load_session(self._db, session_id)

    async def save_approval(
        self, session_id: str, call_id: str, tool_name: str, arguments: dict[str, Any]
    ) -> None:
        await database.save_pending_approval(self._db, session_id, call_id, tool_name, arguments)

    async def pending_approvals(self, session_id: str) -> list[dict[str, Any]]:
        return await database.get_pending_approvals(self._db, session_id)


class OursAppend:
    """This project through `append_messages` (beyond the legacy API): the caller sends
    only the new message. Shares an open `Ours`; used by the conversation workload."""

    name = "ours-append"

    def __init__(self, ours: Ours) -> None:
        self._ours = ours

    async def seed(self, session_id: str, messages: list[Message]) -> None:
        await self._ours.seed(session_id, messages)

    async def save(self, session_id: str, messages: list[Message]) -> None:
        await database.append_messages(self._ours._db, session_id, messages[-1:], datetime.now(UTC))

    async def load(self, session_id: str) -> dict[str, Any] | None:
        return await self._ours.load(session_id)
