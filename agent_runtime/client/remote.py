"""`RemoteDatabaseService`: the legacy `DatabaseService` methods over the REST API.

Same names, arguments and return shapes as the in-process service; the leading
`db` argument is accepted and ignored, datetimes come back timezone-aware. Beyond
the legacy methods, the ones an integration needs to run approved tool calls
(`put_agent_context`, `create_approval`, `wait_for_decision`, `claim_approval`,
`report_result`), so code written against `DatabaseService` runs remote unchanged.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx

from agent_runtime.client._async import DEFAULT_TIMEOUT, AsyncAgentRuntimeClient
from agent_runtime.client._core import Call, create_approval, session_approvals, update_session
from agent_runtime.errors import ConflictError, NotFoundError
from agent_runtime.schemas.approvals import MAX_WAIT_SECONDS, ApprovalIn, ApprovalRead
from agent_runtime.schemas.cursors import encode_cursor
from agent_runtime.schemas.sessions import MessageIn
from agent_runtime.schemas.types import UTCDateTime
from agent_runtime.schemas.validation import (
    lookup_id,
    require_decision,
    require_id,
    require_non_negative_number,
    require_positive_int,
    validate,
)

__all__ = ["RemoteDatabaseService"]

_LEGACY_APPROVAL_KEYS = ("call_id", "tool_name", "arguments", "reason", "created_at")


class RemoteDatabaseService:
    """The 19 legacy methods of `DatabaseService`, served by a remote agent-runtime."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        client: AsyncAgentRuntimeClient | None = None,
    ) -> None:
        self.client = client or AsyncAgentRuntimeClient(
            base_url,
            api_key,
            timeout=timeout,
            max_attempts=max_attempts,
            transport=transport,
            http_client=http_client,
        )

    async def __aenter__(self) -> RemoteDatabaseService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- sessions --------------------------------------------------------------------

    async def save_session(
        self, db: Any, session_id: str, messages: list[dict[str, Any]], last_activity: datetime
    ) -> None:
        # Refused here as in-process (same errors and messages), before any request.
        require_id(session_id)
        validate(list[MessageIn], messages, "messages")
        last_activity = validate(UTCDateTime, last_activity, "last_activity")
        await self.client.save_session(session_id, messages, last_activity=last_activity)

    async def load_session(self, db: Any, session_id: str) -> dict[str, Any] | None:
        lookup_id(session_id)
        try:
            loaded = await self.client.load_session(session_id)
        except NotFoundError:
            return None
        out = loaded.model_dump(exclude={"version"}, exclude_unset=True)
        out["messages"] = [m.model_dump(mode="json", exclude_unset=True) for m in loaded.messages]
        return out

    async def delete_session(self, db: Any, session_id: str, soft: bool = True) -> bool:
        try:
            await self.client.delete_session(session_id, hard=not soft)
        except NotFoundError:
            return False
        return True

    async def list_all_sessions(self, db: Any, include_deleted: bool = False) -> list[str]:
        return [
            s.session_id
            async for s in self.client.iter_sessions(page_size=500, include_deleted=include_deleted)
        ]

    async def get_messages_paginated(
        self, db: Any, session_id: str, page: int = 1, page_size: int = 50
    ) -> list[dict[str, Any]]:
        require_positive_int(page, "page")
        require_positive_int(page_size, "page_size")
        offset = (page - 1) * page_size
        after = encode_cursor("messages", offset - 1) if offset else None
        out: list[dict[str, Any]] = []
        try:
            while len(out) < page_size:
                chunk = await self.client.list_messages(
                    session_id, limit=min(page_size - len(out), 1000), after=after
                )
                out += [
                    m.model_dump(
                        mode="json",
                        exclude={"position", "token_count", "metadata"},
                        exclude_unset=True,
                    )
                    for m in chunk.items
                ]
                if chunk.next_cursor is None:
                    break
                after = chunk.next_cursor
        except NotFoundError:
            return []
        return out

    async def get_session_stats(self, db: Any, session_id: str) -> dict[str, Any] | None:
        try:
            stats = await self.client.session_stats(session_id)
        except NotFoundError:
            return None
        return stats.model_dump()

    async def update_session_title(self, db: Any, session_id: str, title: str) -> bool:
        return await self._update(session_id, title=title)

    async def update_session_description(self, db: Any, session_id: str, description: str) -> bool:
        return await self._update(session_id, description=description)

    async def _update(self, session_id: str, **changes: str | None) -> bool:
        try:
            await self.client.send(update_session(session_id, changes, None))
        except NotFoundError:
            return False
        return True

    # --- agent contexts --------------------------------------------------------------

    async def save_agent_context(
        self,
        db: Any,
        session_id: str,
        current_agent: str,
        agent_history: list[dict[str, Any]],
        metadata: dict[str, Any],
        created_at: datetime,
        last_switch_at: datetime | None,
        switch_count: int,
    ) -> None:
        """Does nothing when the session is unknown or deleted, as in-process."""
        await self.put_agent_context(
            db,
            session_id,
            current_agent,
            agent_history,
            metadata,
            created_at,
            last_switch_at,
            switch_count,
        )

    async def put_agent_context(
        self,
        db: Any,
        session_id: str,
        current_agent: str,
        agent_history: list[dict[str, Any]],
        metadata: dict[str, Any] | None,
        created_at: datetime,
        last_switch_at: datetime | None,
        switch_count: int,
    ) -> bool:
        """`save_agent_context` that tells whether the session existed (and so was saved)."""
        try:
            await self.client.put_agent_context(
                session_id,
                current_agent,
                agent_history=agent_history,
                metadata=metadata or {},
                created_at=created_at,
                last_switch_at=last_switch_at,
                switch_count=switch_count,
            )
        except NotFoundError:
            return False
        return True

    async def load_agent_context(self, db: Any, session_id: str) -> dict[str, Any] | None:
        try:
            context = await self.client.get_agent_context(session_id)
        except NotFoundError:
            return None
        return context.model_dump(by_alias=True)

    async def delete_agent_context(self, db: Any, session_id: str) -> bool:
        try:
            await self.client.delete_agent_context(session_id)
        except NotFoundError:
            return False
        return True

    async def list_all_contexts(self, db: Any) -> list[str]:
        return await self.client.list_agent_contexts()

    async def get_agent_switch_history(
        self, db: Any, session_id: str, limit: int = 100
    ) -> list[dict[str, Any]]:
        require_positive_int(limit, "limit")
        return [s.model_dump() for s in await self.client.agent_switches(session_id, limit=limit)]

    # --- retention -------------------------------------------------------------------

    async def cleanup_old_sessions(self, db: Any, max_age_hours: float = 24) -> int:
        require_non_negative_number(max_age_hours, "max_age_hours")
        report = await self.client.cleanup(idle_hours=max_age_hours, purge_deleted_after_days=None)
        return report.soft_deleted

    async def hard_delete_old_sessions(self, db: Any, days_old: float = 30) -> int:
        require_non_negative_number(days_old, "days_old")
        report = await self.client.cleanup(idle_hours=None, purge_deleted_after_days=days_old)
        return report.hard_deleted

    # --- approvals -------------------------------------------------------------------

    async def save_pending_approval(
        self,
        db: Any,
        session_id: str,
        call_id: str,
        tool_name: str,
        arguments: dict[str, Any],
        reason: str | None = None,
    ) -> None:
        """A second save of the same `call_id` is a no-op, whatever its content."""
        validate(
            ApprovalIn,
            {
                "session_id": session_id,
                "call_id": call_id,
                "tool_name": tool_name,
                "arguments": arguments,
                "reason": reason,
            },
        )
        try:
            await self.client.create_approval(
                session_id, call_id, tool_name, arguments, reason=reason
            )
        except ConflictError:
            return  # the REST answer to other content under a recorded call_id

    async def get_pending_approvals(self, db: Any, session_id: str) -> list[dict[str, Any]]:
        lookup_id(session_id)
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.client.send(session_approvals(session_id, 500, cursor))
            out += [a.model_dump(include=set(_LEGACY_APPROVAL_KEYS)) for a in page.items]
            if (cursor := page.next_cursor) is None:
                return out

    async def delete_pending_approval(self, db: Any, call_id: str) -> bool:
        try:
            await self.client.delete_approval(call_id)
        except NotFoundError:
            return False
        return True

    async def update_approval_status(self, db: Any, call_id: str, status: str) -> bool:
        lookup_id(call_id, "call_id")
        decision = require_decision(status)  # refused here with the in-process message
        return await self.client.update_approval_status(call_id, decision.value)

    # --- running approved calls (beyond the legacy API) ------------------------------

    async def create_approval(
        self,
        db: Any,
        session_id: str,
        call_id: str,
        tool_name: str,
        arguments: dict[str, Any],
        reason: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(the stored approval, whether this request created it: 201, not 200);
        `ConflictError` for other content under a recorded `call_id`."""
        call = create_approval(session_id, call_id, tool_name, arguments, reason)
        parse = call.parse
        with_status: Call[tuple[ApprovalRead, bool]] = Call(
            **{**vars(call), "parse": lambda r: (parse(r), r.status_code == 201)}
        )
        approval, created = await self.client.send(with_status)
        return approval.model_dump(), created

    async def wait_for_decision(self, call_id: str, timeout: float = 30.0) -> dict[str, Any]:  # noqa: ASYNC109
        """As in-process: the approval once decided, or after `timeout` seconds (then
        still `pending`). One REST wait lasts at most MAX_WAIT_SECONDS: longer ones
        are a loop of them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = max(0.0, deadline - loop.time())
            approval = await self.client.wait_for_decision(call_id, min(left, MAX_WAIT_SECONDS))
            if approval.status != "pending" or left <= MAX_WAIT_SECONDS:
                return approval.model_dump()

    async def claim_approval(
        self, db: Any, call_id: str, *, claimed_by: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """(claim token, the approval); the lease is the server's setting."""
        claim = await self.client.claim(call_id, claimed_by=claimed_by)
        return claim.claim_token, claim.model_dump(exclude={"claim_token"})

    async def report_result(
        self, db: Any, call_id: str, claim_token: str, status: str, result: Any = None
    ) -> dict[str, Any]:
        approval = await self.client.report_result(call_id, claim_token, status, result)
        return approval.model_dump()
