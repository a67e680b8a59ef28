"""What both clients share: every REST operation as a `Call` (the request to send,
whether it may be retried, how to read the answer), the error mapping, the retry
policy and the Server-Sent Events parser. The async and sync clients only send."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from agent_runtime.errors import (
    AgentRuntimeError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    TooManyRequestsError,
    UnauthorizedError,
    UnavailableError,
)
from agent_runtime.schemas.agent_contexts import AgentContextRead, AgentSwitchRead
from agent_runtime.schemas.approvals import (
    MAX_WAIT_SECONDS,
    ApprovalClaimRead,
    ApprovalEventRead,
    ApprovalRead,
)
from agent_runtime.schemas.checkpoints import CheckpointRead, CheckpointRefRead
from agent_runtime.schemas.maintenance import CleanupRead
from agent_runtime.schemas.sessions import (
    MessageItemRead,
    SessionRead,
    SessionStatsRead,
    SessionSummaryRead,
)

__all__ = [
    "Call",
    "HTTPClients",
    "LoadedSession",
    "Page",
    "RetryPolicy",
    "SSEParser",
    "StreamEvent",
    "error_from_response",
]

T = TypeVar("T")
# Seconds; above the longest answer the server takes to give (a wait for a decision).
DEFAULT_TIMEOUT = MAX_WAIT_SECONDS + 10
M = TypeVar("M", bound=BaseModel)

_RETRY_STATUS = 503


class LoadedSession(SessionRead):
    """A loaded session with its version (the `ETag`), to pass back as `if_version`."""

    version: int


@dataclass(frozen=True)
class Page(Generic[M]):
    """One keyset page; `next_cursor` is None on the last page. A page of messages
    also has the session's `version` as it was read (its `ETag`)."""

    items: list[M]
    next_cursor: str | None
    prev_cursor: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class StreamEvent:
    """One Server-Sent Event of `GET /events`: `id` is its position in the log."""

    id: int
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = True  # safe to send again after a 503 or a connection error
    ok: Iterable[int] = ()  # statuses besides 2xx that `parse` handles itself

    def build(self, http: httpx.AsyncClient | httpx.Client) -> httpx.Request:
        params = {k: v for k, v in (self.params or {}).items() if v is not None}
        kwargs: dict[str, Any] = {"params": params, "headers": dict(self.headers)}
        if self.json is not None:
            # pydantic's encoder: datetimes and other values as the API reads them
            kwargs["content"] = _JSON.dump_json(self.json)
            kwargs["headers"]["content-type"] = "application/json"
        return http.build_request(self.method, self.path, **kwargs)

    def result(self, response: httpx.Response) -> T:
        if response.is_success or response.status_code in set(self.ok):
            return self.parse(response)
        raise error_from_response(response)


_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> AgentRuntimeError:
    """The domain error for an error answer (its body `{"error": {...}}`)."""
    try:
        body = response.json()["error"]
        code, message = str(body.get("code", "")), str(body.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        body, code, message = {}, "", response.text[:200]
    status = response.status_code
    message = message or f"HTTP {status}"
    error: AgentRuntimeError
    if status == 400:
        error = BadRequestError(message)
    elif status == 404:
        error = NotFoundError(message)
    elif status == 409:
        error = ConflictError(message, current=body.get("current"))
    elif status == 412:
        error = PreconditionFailedError(message)
    elif status == 422:
        error = InvalidInputError(message, body.get("details"))
    elif status == 401:
        error = UnauthorizedError(message)
    elif status == 403:
        error = ForbiddenError(message)
    elif status == 429:
        error = TooManyRequestsError(message, retry_after=int(retry_after(response) or 1))
    elif status == 503:
        error = UnavailableError(message, retry_after=retry_after(response))
    else:
        error = AgentRuntimeError(message)
        error.status_code = status
    if code:
        error.code = code
    return error


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for idempotent calls: on 503 (honouring
    `Retry-After`) and on connection errors, at most `max_attempts` sends."""

    max_attempts: int = 3
    backoff: float = 0.2  # seconds before the second attempt; doubled each time
    max_backoff: float = 10.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempts count from 1)."""
        wait = self.backoff * 2 ** (attempt - 1)
        if response is not None and (after := retry_after(response)) is not None:
            wait = after
        return min(wait, self.max_backoff)

    def should_retry(self, call: Call[Any], attempt: int, response: httpx.Response | None) -> bool:
        """`response` None: the request failed with a connection error."""
        if not call.idempotent or attempt >= self.max_attempts:
            return False
        return response is None or response.status_code == _RETRY_STATUS


RETRYABLE_ERRORS = (httpx.TransportError,)

H = TypeVar("H", httpx.AsyncClient, httpx.Client)


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class HTTPClients(Generic[H]):
    """The httpx client a client sends through, for any event loop and thread.

    Sync (`httpx.Client`): one, shared by every thread (httpx's client is thread-safe).

    Async (`httpx.AsyncClient`) built from a URL: one per running event loop. An httpx
    connection pool belongs to the loop that opened its connections: from another loop
    it fails ("Event loop is closed" once that loop has ended, or worse while it runs).
    So each loop (a thread's `asyncio.run`, `Runner.run_sync`, ...) gets its own pool,
    made with the same settings (base URL, headers, timeout) at its first request, and
    dropped once its loop is closed. Closing the client closes the pool of the running
    loop and, on their loops, those of the loops still running.

    Async with the caller's `http_client` or `transport`: they may hold connections of
    one loop and cannot be copied, so they are used as they are, on the event loop of
    the first request; a request from any other loop raises `RuntimeError` at once,
    before anything is sent.
    """

    def __init__(self, kind: type[H], given: H | None = None, **settings: Any) -> None:
        is_async = issubclass(kind, httpx.AsyncClient)
        self._per_loop = is_async and given is None and settings.get("transport") is None
        self._bound = is_async and not self._per_loop
        self._kind: type[H] = kind
        self._settings = settings
        self._lock = threading.Lock()
        self._closed = False
        self._home: asyncio.AbstractEventLoop | None = None
        # The per-loop clients (None: used outside any event loop).
        self._clients: dict[asyncio.AbstractEventLoop | None, H] = {}
        if not self._per_loop:
            self._clients[None] = given if given is not None else kind(**settings)

    def get(self) -> H:
        """The client for the running event loop (made on the loop's first request)."""
        if not self._per_loop:
            if self._bound and (loop := running_loop()) is not None:
                self._bind(loop)
            return self._clients[None]
        loop = running_loop()
        with self._lock:
            if len(self._clients) > 1 or loop not in self._clients:
                for gone in [o for o in self._clients if o is not None and o.is_closed()]:
                    del self._clients[gone]  # its connections went with the loop
            client = self._clients.get(loop)
            if client is None:
                if self._closed:
                    raise RuntimeError("the agent-runtime client is closed")
                client = self._clients[loop] = self._kind(**self._settings)
            return client

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._home is None:
                self._home = loop
        if self._home is not loop:
            raise RuntimeError(
                "this agent-runtime client was given an http_client or a transport, which "
                "belong to the event loop of its first request: from another event loop or "
                "thread, build the client from a URL (it keeps one connection pool per loop) "
                "or build one client per loop"
            )

    def close_other_loops(self) -> None:
        """Close the clients of the other loops still running (on those loops), drop the
        others, and make no new one: the caller closes the running loop's client."""
        current = running_loop()
        with self._lock:
            self._closed = True
            others = [(loop, c) for loop, c in self._clients.items() if loop is not current]
            if self._per_loop:
                for loop, _ in others:
                    del self._clients[loop]
                if current not in self._clients:  # for the caller to close (it holds nothing)
                    self._clients[current] = self._kind(**self._settings)
        if not self._per_loop:
            return
        for loop, client in others:
            if loop is not None and loop.is_running() and isinstance(client, httpx.AsyncClient):
                closing = client.aclose()
                try:
                    asyncio.run_coroutine_threadsafe(closing, loop)
                except RuntimeError:  # closed in the meantime: its connections went with it
                    closing.close()


class SSEParser:
    """Server-Sent Events from lines of text (the `text/event-stream` format)."""

    def __init__(self) -> None:
        self._id: str | None = None
        self._type = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> StreamEvent | None:
        """The event a blank line completes, else None."""
        if line == "":
            event = None
            if self._data and self._id is not None:
                data = json.loads("\n".join(self._data))
                event = StreamEvent(int(self._id), self._type, data)
            self._id, self._type, self._data = None, "message", []
            return event
        if line.startswith(":"):
            return None  # a comment: the heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self._id = value
        elif name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        return None


def events_call(
    types: Sequence[str] | None, session_id: str | None, last_id: int | None
) -> Call[None]:
    headers = {"accept": "text/event-stream"}
    if last_id is not None:
        headers["last-event-id"] = str(last_id)
    params = {"types": ",".join(types) if types else None, "session_id": session_id}
    return Call("GET", "/events", _none, params=params, headers=headers)


# --- reading answers ---------------------------------------------------------------


def _none(response: httpx.Response) -> None:
    return None


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _models(model: type[M], key: str | None = None) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]

    def parse(response: httpx.Response) -> list[M]:
        body = response.json()
        items: list[M] = adapter.validate_python(body[key] if key else body)
        return items

    return parse


def _page(model: type[M]) -> Callable[[httpx.Response], Page[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]

    def parse(response: httpx.Response) -> Page[M]:
        body = response.json()
        return Page(
            adapter.validate_python(body["items"]),
            body["next_cursor"],
            body.get("prev_cursor"),
            _version(response) if "etag" in response.headers else None,
        )

    return parse


def _version(response: httpx.Response) -> int:
    return int(response.headers["etag"].strip('W/"'))


def _loaded(response: httpx.Response) -> LoadedSession:
    return LoadedSession.model_validate({**response.json(), "version": _version(response)})


def _if_match(if_version: int | None) -> dict[str, str]:
    return {} if if_version is None else {"if-match": f'"{if_version}"'}


# --- the operations ------------------------------------------------------------------


def save_session(
    session_id: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    if_version: int | None,
    last_activity: datetime | None,
    append: bool,
    retry: bool = True,
) -> Call[int]:
    """Save (or append); the answer is the session's new version. A save replaces the
    whole list, so sending it again is harmless; an append without `if_version` is not
    (it could add the messages twice), so it is never retried. A conditional write
    sent again after a lost answer gets 412 if the lost one was written: `retry=False`
    sends it once, for a caller that tells the two apart itself."""
    return Call(
        "POST",
        f"/sessions/{_segment(session_id)}" + ("/messages" if append else ""),
        _version,
        params={"last_activity": last_activity.isoformat() if last_activity else None},
        json=list(messages),
        headers=_if_match(if_version),
        idempotent=retry and (not append or if_version is not None),
    )


def load_session(session_id: str) -> Call[LoadedSession]:
    return Call("GET", f"/sessions/{_segment(session_id)}", _loaded)


def list_sessions(
    limit: int, cursor: str | None, include_deleted: bool
) -> Call[Page[SessionSummaryRead]]:
    params = {"limit": limit, "cursor": cursor, "include_deleted": include_deleted}
    return Call("GET", "/sessions", _page(SessionSummaryRead), params=params)


def list_messages(
    session_id: str,
    limit: int,
    after: str | None,
    before: str | None,
    latest: bool,
) -> Call[Page[MessageItemRead]]:
    params = {"limit": limit, "after": after, "before": before, "latest": latest}
    return Call(
        "GET",
        f"/sessions/{_segment(session_id)}/messages",
        _page(MessageItemRead),
        params=params,
    )


def session_stats(session_id: str) -> Call[SessionStatsRead]:
    return Call("GET", f"/sessions/{_segment(session_id)}/stats", _model(SessionStatsRead))


def update_session(
    session_id: str, changes: Mapping[str, Any], if_version: int | None
) -> Call[SessionSummaryRead]:
    return Call(
        "PATCH",
        f"/sessions/{_segment(session_id)}",
        _model(SessionSummaryRead),
        json=dict(changes),
        headers=_if_match(if_version),
    )


def delete_session(session_id: str, hard: bool, if_version: int | None) -> Call[None]:
    return Call(
        "DELETE",
        f"/sessions/{_segment(session_id)}",
        _none,
        params={"hard": hard},
        headers=_if_match(if_version),
    )


def put_agent_context(session_id: str, body: Mapping[str, Any]) -> Call[AgentContextRead]:
    return Call(
        "PUT",
        f"/sessions/{_segment(session_id)}/agent-context",
        _model(AgentContextRead),
        json=dict(body),
    )


def get_agent_context(session_id: str) -> Call[AgentContextRead]:
    return Call("GET", f"/sessions/{_segment(session_id)}/agent-context", _model(AgentContextRead))


def delete_agent_context(session_id: str) -> Call[None]:
    return Call("DELETE", f"/sessions/{_segment(session_id)}/agent-context", _none)


def list_agent_contexts() -> Call[list[str]]:
    return Call("GET", "/agent-contexts", lambda r: [str(i) for i in r.json()["session_ids"]])


def agent_switches(session_id: str, limit: int) -> Call[list[AgentSwitchRead]]:
    return Call(
        "GET",
        f"/sessions/{_segment(session_id)}/agent-switches",
        _models(AgentSwitchRead, "items"),
        params={"limit": limit},
    )


def create_approval(
    session_id: str,
    call_id: str,
    tool_name: str,
    arguments: Mapping[str, Any],
    reason: str | None,
) -> Call[ApprovalRead]:
    """Idempotent by `call_id`: sending the same approval again answers 200."""
    body = {
        "session_id": session_id,
        "call_id": call_id,
        "tool_name": tool_name,
        "arguments": arguments,
        "reason": reason,
    }
    return Call("POST", "/approvals", _model(ApprovalRead), json=body)


def list_approvals(
    status: str | None, session_id: str | None, limit: int, cursor: str | None
) -> Call[Page[ApprovalRead]]:
    params = {"status": status, "session_id": session_id, "limit": limit, "cursor": cursor}
    return Call("GET", "/approvals", _page(ApprovalRead), params=params)


def session_approvals(session_id: str, limit: int, cursor: str | None) -> Call[Page[ApprovalRead]]:
    return Call(
        "GET",
        f"/sessions/{_segment(session_id)}/approvals",
        _page(ApprovalRead),
        params={"limit": limit, "cursor": cursor},
    )


def get_approval(call_id: str) -> Call[ApprovalRead]:
    return Call("GET", f"/approvals/{_segment(call_id)}", _model(ApprovalRead))


def delete_approval(call_id: str) -> Call[None]:
    return Call("DELETE", f"/approvals/{_segment(call_id)}", _none)


def decide_approval(
    call_id: str,
    status: str,
    decided_by: str | None,
    message: str | None,
    arguments: Mapping[str, Any] | None,
) -> Call[ApprovalRead]:
    """A compare-and-set from `pending`: the same decision again returns it, so it is
    safe to repeat."""
    body: dict[str, Any] = {"status": status}
    for key, value in (("decided_by", decided_by), ("message", message)):
        if value is not None:
            body[key] = value
    if arguments is not None:
        body["arguments"] = dict(arguments)
    return Call("POST", f"/approvals/{_segment(call_id)}/decision", _model(ApprovalRead), json=body)


def update_approval_status(call_id: str, status: str) -> Call[bool]:
    """The legacy status update, last write wins: safe to repeat."""
    return Call(
        "PUT",
        f"/approvals/{_segment(call_id)}/status",
        lambda response: bool(response.json()["updated"]),
        json={"status": status},
    )


def wait_for_decision(call_id: str, timeout: float) -> Call[ApprovalRead]:
    return Call(
        "GET",
        f"/approvals/{_segment(call_id)}/wait",
        _model(ApprovalRead),
        params={"timeout": timeout},
    )


def claim_approval(call_id: str, claimed_by: str | None) -> Call[ApprovalClaimRead]:
    """Never retried: a lost answer would leave the token unknown and the call claimed."""
    return Call(
        "POST",
        f"/approvals/{_segment(call_id)}/claim",
        _model(ApprovalClaimRead),
        json={"claimed_by": claimed_by} if claimed_by is not None else {},
        idempotent=False,
    )


def report_result(call_id: str, claim_token: str, status: str, result: Any) -> Call[ApprovalRead]:
    """The same report with the same token answers 200 again: safe to repeat."""
    body = {"claim_token": claim_token, "status": status, "result": result}
    return Call("POST", f"/approvals/{_segment(call_id)}/result", _model(ApprovalRead), json=body)


def approval_events(call_id: str) -> Call[list[ApprovalEventRead]]:
    return Call("GET", f"/approvals/{_segment(call_id)}/events", _models(ApprovalEventRead))


def cleanup(body: Mapping[str, Any]) -> Call[CleanupRead]:
    # Not retried: a repeated purge would report 0 where the lost answer had the count.
    return Call(
        "POST", "/maintenance/cleanup", _model(CleanupRead), json=dict(body), idempotent=False
    )


# --- LangGraph checkpoints (bytes travel as base64) -------------------------------------


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _checkpoints(thread_id: str, tail: str = "") -> str:
    return f"/sessions/{_segment(thread_id)}/checkpoints{tail}"


def put_checkpoint(
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    parent_checkpoint_id: str | None,
    type: str,
    checkpoint: bytes,
    metadata: Mapping[str, Any],
) -> Call[CheckpointRefRead]:
    """Stores the checkpoint whole, replacing one of the same id: safe to repeat."""
    body = {
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "parent_checkpoint_id": parent_checkpoint_id,
        "type": type,
        "checkpoint": _base64(checkpoint),
        "metadata": dict(metadata),
    }
    return Call("PUT", _checkpoints(thread_id), _model(CheckpointRefRead), json=body)


def put_checkpoint_writes(
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    writes: Sequence[Mapping[str, Any]],
    replace: bool,
) -> Call[None]:
    """A write stored already is kept (or, with `replace`, replaced by the same one):
    safe to repeat."""
    body = {
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "writes": [{**w, "blob": _base64(w["blob"])} for w in writes],
        "replace": replace,
    }
    return Call("POST", _checkpoints(thread_id, "/writes"), _none, json=body)


def _checkpoint_or_none(response: httpx.Response) -> CheckpointRead | None:
    if response.status_code == 404:
        return None
    return CheckpointRead.model_validate_json(response.content)


def get_checkpoint(
    thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
) -> Call[CheckpointRead | None]:
    """None (404) when the thread has no such checkpoint."""
    params = {"checkpoint_ns": checkpoint_ns, "checkpoint_id": checkpoint_id}
    return Call(
        "GET", _checkpoints(thread_id, "/latest"), _checkpoint_or_none, params=params, ok=(404,)
    )


def list_checkpoints(
    thread_id: str | None,
    checkpoint_ns: str | None,
    checkpoint_id: str | None,
    before: str | None,
    metadata: Mapping[str, Any] | None,
    limit: int,
    cursor: str | None,
) -> Call[Page[CheckpointRead]]:
    params = {
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "before": before,
        "metadata": _JSON.dump_json(dict(metadata)).decode() if metadata else None,
        "limit": limit,
        "cursor": cursor,
    }
    return Call("GET", "/checkpoints", _page(CheckpointRead), params=params)


def delete_thread_checkpoints(thread_id: str) -> Call[None]:
    return Call("DELETE", _checkpoints(thread_id), _none)


def _count(key: str) -> Callable[[httpx.Response], int]:
    return lambda response: int(response.json()[key])


# The three below are retried: sent again after a lost answer, they do nothing more
# (the count answered is then that of the repeat).


def delete_checkpoints_for_runs(run_ids: Sequence[str]) -> Call[int]:
    return Call(
        "POST", "/checkpoints/delete-for-runs", _count("deleted"), json={"run_ids": list(run_ids)}
    )


def copy_thread_checkpoints(source_thread_id: str, target_thread_id: str) -> Call[int]:
    return Call(
        "POST",
        _checkpoints(source_thread_id, "/copy"),
        _count("copied"),
        json={"target_thread_id": target_thread_id},
    )


def prune_checkpoints(thread_ids: Sequence[str], keep: int) -> Call[int]:
    body = {"thread_ids": list(thread_ids), "keep": keep}
    return Call("POST", "/checkpoints/prune", _count("deleted"), json=body)


def _segment(value: str) -> str:
    """An id as one path segment (percent-encoded: `/`, `?`, `#` and the like)."""
    from urllib.parse import quote

    return quote(value, safe="")
