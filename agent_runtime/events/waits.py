"""Waiting for a person's decision without polling and without a database connection."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from agent_runtime.errors import InvalidInputError, NotFoundError
from agent_runtime.events.hub import EventHub, current_hub
from agent_runtime.schemas.approvals import MAX_WAIT_SECONDS
from agent_runtime.schemas.validation import lookup_id
from agent_runtime.services._common import DB
from agent_runtime.services.approvals import get_approval
from models import ApprovalStatus

__all__ = ["MAX_WAIT_SECONDS", "wait_for_decision"]


async def wait_for_decision(
    call_id: str,
    timeout: float = 30.0,  # noqa: ASYNC109 - the legacy-style API: wait(call_id, timeout)
    *,
    db: DB | None = None,
    hub: EventHub | None = None,
) -> dict[str, Any]:
    """The approval as soon as its status is no longer `pending`, or as it is when
    `timeout` seconds have passed (then still `pending`). `NotFoundError` for an
    unknown call.

    Answers early (still `pending`) when the server shuts down. Holds no connection
    while it waits: it reads the approval, then sleeps until the
    process's event hub reads an event of this call. The hub is the app's, or (for
    code using the service API after `init_database`) one started on first use.
    """
    call_id = lookup_id(call_id, "call_id")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InvalidInputError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    hub = hub or current_hub() or await _service_api_hub()
    conn = db if db is not None else hub.connection()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with hub.watch(call_id) as changed:
        while True:
            changed.clear()  # before the read: an event after it is not lost
            approval = await get_approval(conn, call_id)
            if approval is None:
                raise NotFoundError(f"approval {call_id!r} not found")
            remaining = deadline - loop.time()
            if approval["status"] != ApprovalStatus.PENDING or remaining <= 0 or hub.closing:
                return approval
            with suppress(TimeoutError):  # asyncio.timeout: see EventHub._read_forever
                async with asyncio.timeout(remaining):
                    await changed.wait()


async def _service_api_hub() -> EventHub:
    from agent_runtime.events.service_hub import service_api_hub

    return await service_api_hub()
