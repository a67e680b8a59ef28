"""What the workloads need from an implementation (legacy, ours, floor)."""

from __future__ import annotations

from typing import Any, Protocol

from benchmarks.data import Message


class Impl(Protocol):
    name: str

    async def open(self) -> None:
        """Connect and create the schema (the database is fresh)."""

    async def close(self) -> None: ...

    async def seed(self, session_id: str, messages: list[Message]) -> None:
        """Create a session holding `messages` (untimed preparation)."""

    async def save(self, session_id: str, messages: list[Message]) -> None:
        """Save the whole conversation, whose last message is new since the previous save."""

    async def load(self, session_id: str) -> dict[str, Any] | None: ...

    async def save_approval(
        self, session_id: str, call_id: str, tool_name: str, arguments: dict[str, Any]
    ) -> None: ...

    async def pending_approvals(self, session_id: str) -> list[dict[str, Any]]: ...
