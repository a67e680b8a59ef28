"""`AgentRuntimeClient`: the sync twin of `AsyncAgentRuntimeClient`, over an `httpx.Client`.

GENERATED from _async.py by `python -m scripts.unasync`: edit _async.py. Requests
are built and answers read in `_core`; this only sends."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx

from agent_runtime.client import _core as core
from agent_runtime.client._async import DEFAULT_TIMEOUT, headers
from agent_runtime.client._core import (
    RETRYABLE_ERRORS,
    Call,
    LoadedSession,
    Page,
    RetryPolicy,
    SSEParser,
    StreamEvent,
)
from agent_runtime.schemas.agent_contexts import AgentContextRead, AgentSwitchRead
from agent_runtime.schemas.approvals import ApprovalClaimRead, ApprovalEventRead, ApprovalRead
from agent_runtime.schemas.checkpoints import CheckpointRead, CheckpointRefRead
from agent_runtime.schemas.maintenance import CleanupRead
from agent_runtime.schemas.sessions import MessageItemRead, SessionStatsRead, SessionSummaryRead
from agent_runtime.schemas.validation import require_positive_int

__all__ = ["AgentRuntimeClient"]

T = TypeVar("T")


class AgentRuntimeClient:
    """The agent-runtime REST API from another process, typed.

    Errors are the domain errors of `agent_runtime.errors` (404 `NotFoundError`, 409
    `ConflictError` with `.current`, 412 `PreconditionFailedError`, 422
    `InvalidInputError` with `.details`, 503 `UnavailableError` with `.retry_after`,
    401 `UnauthorizedError`). Idempotent calls are retried on 503 and connection
    errors (`max_attempts` sends at most); an append without `if_version`, a claim
    and a cleanup never are.

    Pass `transport` (e.g. `httpx.ASGITransport(app=app)`) or a ready `http_client`
    (whose base URL and headers are then used as they are).

    Threads and event loops (`core.HTTPClients`): the sync client shares one httpx
    client between threads; the async one, built from a URL, keeps one per event loop,
    so any thread's loop can use it (`asyncio.run`, `Runner.run_sync`, ...), and given
    a `transport` or an `http_client`, the loop of its first request only.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = 3,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.retry = RetryPolicy(max_attempts=max_attempts, backoff=backoff)
        self._own = http_client is None
        self._http = core.HTTPClients(
            httpx.Client,
            http_client,
            base_url=base_url,
            headers=headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    @property
    def http(self) -> httpx.Client:
        """The httpx client to send with (`core.HTTPClients`)."""
        return self._http.get()

    def __enter__(self) -> AgentRuntimeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self._http.close_other_loops()
            self.http.close()

    def send(self, call: Call[T]) -> T:
        """Send `call`, retrying as the policy allows; its parsed answer."""
        http = self.http
        attempt = 0
        while True:
            attempt += 1
            try:
                response = http.send(call.build(http))
            except RETRYABLE_ERRORS:
                if not self.retry.should_retry(call, attempt, None):
                    raise
                time.sleep(self.retry.delay(attempt, None))
                continue
            if self.retry.should_retry(call, attempt, response):
                time.sleep(self.retry.delay(attempt, response))
                continue
            return call.result(response)

    # --- sessions --------------------------------------------------------------------

    def save_session(
        self,
        session_id: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        if_version: int | None = None,
        last_activity: datetime | None = None,
        retry: bool = True,
    ) -> int:
        """Replace the session's messages (creating it); its new version. `retry=False`:
        sent once, a lost answer raises (see `core.save_session`)."""
        return self.send(
            core.save_session(
                session_id,
                messages,
                if_version=if_version,
                last_activity=last_activity,
                append=False,
                retry=retry,
            )
        )

    def append_messages(
        self,
        session_id: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        if_version: int | None = None,
        last_activity: datetime | None = None,
        retry: bool = True,
    ) -> int:
        """Add messages after the stored ones (creating the session); its new version.
        Retried only with `if_version` (and `retry`): see `core.save_session`."""
        return self.send(
            core.save_session(
                session_id,
                messages,
                if_version=if_version,
                last_activity=last_activity,
                append=True,
                retry=retry,
            )
        )

    def load_session(self, session_id: str) -> LoadedSession:
        return self.send(core.load_session(session_id))

    def list_sessions(
        self, *, limit: int = 50, cursor: str | None = None, include_deleted: bool = False
    ) -> Page[SessionSummaryRead]:
        return self.send(core.list_sessions(limit, cursor, include_deleted))

    def iter_sessions(
        self, *, page_size: int = 100, include_deleted: bool = False
    ) -> Iterator[SessionSummaryRead]:
        """Every session, most recently active first, a keyset page at a time."""
        cursor: str | None = None
        while True:
            page = self.list_sessions(
                limit=page_size, cursor=cursor, include_deleted=include_deleted
            )
            yield from page.items
            if (cursor := page.next_cursor) is None:
                return

    def list_messages(
        self,
        session_id: str,
        *,
        limit: int = 100,
        after: str | None = None,
        before: str | None = None,
        latest: bool = False,
    ) -> Page[MessageItemRead]:
        return self.send(core.list_messages(session_id, limit, after, before, latest))

    def iter_messages(self, session_id: str, *, page_size: int = 100) -> Iterator[MessageItemRead]:
        """Every message in saved order, a keyset page at a time."""
        cursor: str | None = None
        while True:
            page = self.list_messages(session_id, limit=page_size, after=cursor)
            yield from page.items
            if (cursor := page.next_cursor) is None:
                return

    def session_stats(self, session_id: str) -> SessionStatsRead:
        return self.send(core.session_stats(session_id))

    def update_session(
        self, session_id: str, *, if_version: int | None = None, **changes: str | None
    ) -> SessionSummaryRead:
        """Change `title` and/or `description` (None clears)."""
        return self.send(core.update_session(session_id, changes, if_version))

    def delete_session(
        self, session_id: str, *, hard: bool = False, if_version: int | None = None
    ) -> None:
        self.send(core.delete_session(session_id, hard, if_version))

    # --- agent contexts --------------------------------------------------------------

    def put_agent_context(
        self,
        session_id: str,
        current_agent: str,
        *,
        agent_history: Sequence[Mapping[str, Any]] = (),
        metadata: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
        last_switch_at: datetime | None = None,
        switch_count: int = 0,
    ) -> AgentContextRead:
        body = {
            "current_agent": current_agent,
            "agent_history": [dict(entry) for entry in agent_history],
            "metadata": dict(metadata or {}),
            "created_at": created_at,
            "last_switch_at": last_switch_at,
            "switch_count": switch_count,
        }
        return self.send(core.put_agent_context(session_id, body))

    def get_agent_context(self, session_id: str) -> AgentContextRead:
        return self.send(core.get_agent_context(session_id))

    def delete_agent_context(self, session_id: str) -> None:
        self.send(core.delete_agent_context(session_id))

    def list_agent_contexts(self) -> list[str]:
        return self.send(core.list_agent_contexts())

    def agent_switches(self, session_id: str, *, limit: int = 100) -> list[AgentSwitchRead]:
        return self.send(core.agent_switches(session_id, limit))

    # --- approvals -------------------------------------------------------------------

    def create_approval(
        self,
        session_id: str,
        call_id: str,
        tool_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        reason: str | None = None,
    ) -> ApprovalRead:
        """Record a tool call awaiting a decision (the same again: returned as stored;
        other content under the same `call_id`: `ConflictError`)."""
        return self.send(
            core.create_approval(session_id, call_id, tool_name, arguments or {}, reason)
        )

    def list_approvals(
        self,
        *,
        status: str | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ApprovalRead]:
        return self.send(core.list_approvals(status, session_id, limit, cursor))

    def iter_approvals(
        self, *, status: str | None = None, session_id: str | None = None, page_size: int = 100
    ) -> Iterator[ApprovalRead]:
        """The inbox, oldest first, a keyset page at a time."""
        cursor: str | None = None
        while True:
            page = self.list_approvals(
                status=status, session_id=session_id, limit=page_size, cursor=cursor
            )
            yield from page.items
            if (cursor := page.next_cursor) is None:
                return

    def session_approvals(
        self, session_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ApprovalRead]:
        """The session's pending approvals, oldest first."""
        return self.send(core.session_approvals(session_id, limit, cursor))

    def get_approval(self, call_id: str) -> ApprovalRead:
        return self.send(core.get_approval(call_id))

    def delete_approval(self, call_id: str) -> None:
        self.send(core.delete_approval(call_id))

    def decide(
        self,
        call_id: str,
        status: str,
        *,
        decided_by: str | None = None,
        message: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> ApprovalRead:
        return self.send(core.decide_approval(call_id, status, decided_by, message, arguments))

    def update_approval_status(self, call_id: str, status: str) -> bool:
        """The legacy status update (last write wins); False if the call is unknown,
        or already claimed or run."""
        return self.send(core.update_approval_status(call_id, status))

    def wait_for_decision(self, call_id: str, timeout: float = 30.0) -> ApprovalRead:
        """The approval once decided, or at the timeout (at most MAX_WAIT_SECONDS)
        still `pending`."""
        return self.send(core.wait_for_decision(call_id, timeout))

    def claim(self, call_id: str, *, claimed_by: str | None = None) -> ApprovalClaimRead:
        return self.send(core.claim_approval(call_id, claimed_by))

    def report_result(
        self, call_id: str, claim_token: str, status: str, result: Any = None
    ) -> ApprovalRead:
        return self.send(core.report_result(call_id, claim_token, status, result))

    def approval_events(self, call_id: str) -> list[ApprovalEventRead]:
        return self.send(core.approval_events(call_id))

    def cleanup(self, **policy: Any) -> CleanupRead:
        """A retention run (`idle_hours`, `purge_deleted_after_days`,
        `expire_approvals_after_hours`, `dry_run`)."""
        return self.send(core.cleanup(policy))

    # --- LangGraph checkpoints (`AgentRuntimeSaver(client=...)`) ---------------------

    def put_checkpoint(
        self,
        thread_id: str,
        checkpoint_id: str,
        *,
        type: str,
        checkpoint: bytes,
        checkpoint_ns: str = "",
        parent_checkpoint_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CheckpointRefRead:
        """Store a serialized checkpoint (`type` and bytes, as `serde.dumps_typed` gives
        them) of the thread, replacing one of the same id; creates the thread's session."""
        return self.send(
            core.put_checkpoint(
                thread_id,
                checkpoint_ns,
                checkpoint_id,
                parent_checkpoint_id,
                type,
                checkpoint,
                metadata or {},
            )
        )

    def put_checkpoint_writes(
        self,
        thread_id: str,
        checkpoint_id: str,
        writes: Sequence[Mapping[str, Any]],
        *,
        checkpoint_ns: str = "",
        replace: bool = False,
    ) -> None:
        """Store writes of tasks against a checkpoint, each `{idx, task_id, channel, type,
        blob (bytes), task_path}`; one stored already is kept, or with `replace` replaced."""
        self.send(
            core.put_checkpoint_writes(thread_id, checkpoint_ns, checkpoint_id, writes, replace)
        )

    def get_checkpoint(
        self, thread_id: str, *, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointRead | None:
        """The checkpoint `checkpoint_id` of the thread's namespace, or its latest; None
        if there is none."""
        return self.send(core.get_checkpoint(thread_id, checkpoint_ns, checkpoint_id))

    def list_checkpoints(
        self,
        *,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[CheckpointRead]:
        """One page, newest first: `limit` rows read, then those whose metadata has
        each key of `metadata` kept, so a page may be short or empty and still have a
        `next_cursor` (`iter_checkpoints` follows it)."""
        return self.send(
            core.list_checkpoints(
                thread_id, checkpoint_ns, checkpoint_id, before, metadata, limit, cursor
            )
        )

    def iter_checkpoints(
        self,
        *,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[CheckpointRead]:
        """Checkpoints newest first (of every thread without `thread_id`), at most
        `limit`, a keyset page (at most `page_size` rows read) at a time."""
        if limit is not None:
            require_positive_int(limit, "limit", allow_zero=True)
        require_positive_int(page_size, "page_size", maximum=500)
        sent, cursor = 0, None
        while limit is None or sent < limit:
            size = page_size
            if limit is not None and not metadata:  # every row read is sent
                size = min(page_size, limit - sent)
            page = self.list_checkpoints(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=checkpoint_id,
                before=before,
                metadata=metadata,
                limit=size,
                cursor=cursor,
            )
            if limit is not None:
                del page.items[limit - sent :]  # read past the limit (a metadata filter)
            yield from page.items
            sent += len(page.items)
            if (cursor := page.next_cursor) is None:
                return

    def delete_thread_checkpoints(self, thread_id: str) -> None:
        """Delete the thread's checkpoints and writes (its session stays)."""
        self.send(core.delete_thread_checkpoints(thread_id))

    def delete_checkpoints_for_runs(self, run_ids: Sequence[str]) -> int:
        """Delete the checkpoints of these runs (`metadata["run_id"]`); how many."""
        return self.send(core.delete_checkpoints_for_runs(run_ids))

    def copy_thread_checkpoints(self, source_thread_id: str, target_thread_id: str) -> int:
        """Copy every checkpoint and write of a thread to another; how many checkpoints."""
        return self.send(core.copy_thread_checkpoints(source_thread_id, target_thread_id))

    def prune_checkpoints(self, thread_ids: Sequence[str], *, keep: int = 1) -> int:
        """Keep the `keep` latest checkpoints of each namespace of each thread (0: none)
        and delete the rest; how many were deleted."""
        return self.send(core.prune_checkpoints(thread_ids, keep))

    # --- the event stream ------------------------------------------------------------

    def events(
        self,
        *,
        types: Sequence[str] | None = None,
        session_id: str | None = None,
        after: int | None = None,
        reconnect_delay: float = 0.5,
        max_reconnects: int | None = None,
    ) -> Iterator[StreamEvent]:
        """The event log as it grows (after `after`, default: from now on). After a
        disconnect it reconnects with `Last-Event-ID`: no event lost or repeated.
        `max_reconnects` consecutive failed connections (None: no bound) end it with
        the last error."""
        last_id, failures = after, 0
        while True:
            try:
                request = core.events_call(types, session_id, last_id).build(self.http)
                response = self.http.send(request, stream=True)
                try:
                    if not response.is_success:
                        response.read()
                        error = core.error_from_response(response)
                        if response.status_code != 503:
                            raise error
                        raise httpx.TransportError(str(error))
                    failures = 0
                    parser = SSEParser()
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            last_id = event.id
                            yield event
                finally:
                    response.close()
            except RETRYABLE_ERRORS:
                failures += 1
                if max_reconnects is not None and failures > max_reconnects:
                    raise
            time.sleep(reconnect_delay)
