"""OpenAI Agents SDK: a `Session` stored in agent-runtime.

Install with the extra: ``pip install 'agent-runtime[openai-agents]'``.

```python
from agents import Agent, Runner
from agent_runtime.integrations.openai_agents import AgentRuntimeSession
from agent_runtime.service_api import init_database

await init_database("sqlite:///data/agent_runtime.db")
result = await Runner.run(agent, "Hi", session=AgentRuntimeSession("conversation-1"))
```

Or against a remote agent-runtime, over REST (no `init_database` in this process):
``AgentRuntimeSession("conversation-1", client=AsyncAgentRuntimeClient(url))``.

Event loops: over REST a session works from any event loop and thread (threads each
running `asyncio.run`, `Runner.run_sync` from a fresh loop each time). In-process it
is bound to the event loop that owns the database connection, and raises
`RuntimeError` (`LOOP_RULE`) at once from any other (see `AgentRuntimeSession`).

Encoding: each SDK item (a Responses API input item, any JSON object) is one stored
message, in order. The item itself is kept whole in the message's `metadata` under
`ITEM_KEY` (that is what `get_items` returns, unchanged; over REST the first message
of each `add_items` also has the write's id under `WRITE_KEY`); `role` and `content` are a
readable rendering for the console, the REST API and `load_session`: chat messages
keep their role (`developer` is stored as `system`) and text, a tool's output is a
`tool` message, anything else (tool calls, reasoning, ...) an `assistant` message
with the text it carries, if any. Messages written by other code in the same
session read back as ``{"role": ..., "content": ...}`` items.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import httpx

from agent_runtime import service_api as store
from agent_runtime.client.remote import RemoteDatabaseService
from agent_runtime.errors import (
    AgentRuntimeError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    UnavailableError,
)
from agent_runtime.schemas.cursors import encode_cursor
from agent_runtime.services.messages import stored_messages
from agent_runtime.timeutils import utc_now
from models.enums import APPROVED_OR_LATER, ApprovalStatus

if TYPE_CHECKING:
    from agents import Agent, RunResult
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings

    from agent_runtime.client import AsyncAgentRuntimeClient

__all__ = [
    "ITEM_KEY",
    "LOOP_RULE",
    "RUN_STATE_KEY",
    "WRITE_KEY",
    "AgentRuntimeSession",
    "item_to_message",
    "load_run_state",
    "message_to_item",
    "resume_run",
    "run_with_approvals",
    "submit_interruptions",
]

# The message metadata key holding the SDK item, whole.
ITEM_KEY = "openai_agents_item"

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TOOL_OUTPUTS = {
    "function_call_output",
    "computer_call_output",
    "local_shell_call_output",
    "shell_call_output",
    "apply_patch_call_output",
    "custom_tool_call_output",
    "mcp_approval_response",
}
# Messages read a page at a time over REST (the most the API gives).
_PAGE_SIZE = 1000
# The stored columns a message written here may set (see `_comparable`).
_COLUMNS = ("role", "content", "name", "tool_call_id", "tool_calls", "token_count", "metadata")


def _text(value: Any) -> str | None:
    """The text of a content value: a string, or the `text` of its parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [
            part["text"]
            for part in value
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        return "\n".join(parts) if parts else None
    return None


def item_to_message(item: Mapping[str, Any]) -> dict[str, Any]:
    """The message stored for one SDK item (the item kept whole in `metadata`)."""
    if not isinstance(item, Mapping):
        raise TypeError(f"an OpenAI Agents SDK item is a JSON object, not {type(item).__name__}")
    kind = item.get("type")
    role = item.get("role")
    if role in _ROLES and kind in (None, "message"):
        message: dict[str, Any] = {"role": _ROLES[role], "content": _text(item.get("content"))}
    elif kind in _TOOL_OUTPUTS:
        message = {"role": "tool", "content": _text(item.get("output"))}
    else:
        text = _text(item.get("content")) or _text(item.get("summary"))
        message = {"role": "assistant", "content": text}
    message["metadata"] = {ITEM_KEY: copy.deepcopy(dict(item))}
    return _comparable(message)


def message_to_item(message: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK item a stored message stands for."""
    metadata = message.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get(ITEM_KEY), Mapping):
        return cast("dict[str, Any]", metadata[ITEM_KEY])
    return {"role": str(message["role"]), "content": message.get("content") or ""}


def _comparable(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored message as this module writes it: its set columns, no timestamp.

    Rewriting the stored list with these dicts keeps every unchanged message (the
    save compares them with what is stored, or with this process's cached copy)."""
    return {key: row[key] for key in _COLUMNS if row.get(key) is not None}


# ---------------------------------------------------------------------------
# Event loops: in-process, the one that owns the database connection

LOOP_RULE = (
    "AgentRuntimeSession in-process is bound to the event loop that opened the "
    "database connection (the first to use it after init_database, usually the one "
    "that called it); this is another event loop or thread. From other event loops or "
    "threads use client=AsyncAgentRuntimeClient(url), which works from any of them"
)

# The loop that claimed a connection Tortoise has not opened yet (it opens on the
# first query): claimed at once, so that two loops cannot both take it.
_claims: weakref.WeakKeyDictionary[Any, asyncio.AbstractEventLoop] = weakref.WeakKeyDictionary()
_claims_lock = threading.Lock()


def _held_connection() -> Any:
    """The connection object Tortoise holds for the process's database, without asking
    Tortoise for one (from another loop, `get_connection` replaces it); None if none."""
    from tortoise.connection import get_connections

    alias = store.current_database().dialect  # RuntimeError before init_database
    storage = getattr(get_connections(), "_get_storage", None)
    return storage().get(alias) if storage is not None else None


def _connection() -> Any:
    """The process's connection (`init_database`), on the event loop that owns it.

    A Tortoise connection belongs to the loop that opened it. Asked for it from another
    loop, Tortoise opens a new one in its place, for every task of the process: the
    owner's work then hangs or breaks, and two threads' loops take it from each other.
    So the loop is checked first, before Tortoise is touched: from any other loop this
    raises `RuntimeError` (`LOOP_RULE`) at once."""
    loop = asyncio.get_running_loop()
    held = _held_connection()
    if held is not None:
        with _claims_lock:
            owner = getattr(held, "_bound_loop", None) or _claims.setdefault(held, loop)
        if owner is not loop:
            raise RuntimeError(LOOP_RULE)
    return store.get_connection()


# ---------------------------------------------------------------------------
# The session

# The message metadata key holding, on the first message of one `add_items` over
# REST, a random id for that write: a write whose answer was lost is recognised by it
# (see `AgentRuntimeSession.add_items`).
WRITE_KEY = "openai_agents_write"

# Answers that leave a write's outcome unknown: it may have been committed.
_IN_DOUBT = (httpx.TransportError, UnavailableError)


@dataclass(frozen=True)
class _Base:
    """What an append over REST is conditional on: the session's version (None: no
    such session) and the number of its messages then (the position of the first
    message appended)."""

    version: int | None
    position: int


@dataclass
class _Append:
    """One `add_items` over REST: its messages, the first one marked with the write's
    id, the base of its latest attempt, and whether an attempt on that base went
    unanswered (`in_doubt`: it may have been written)."""

    plain: list[dict[str, Any]]
    write_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    base: _Base | None = None
    in_doubt: bool = False

    @property
    def marked(self) -> list[dict[str, Any]]:
        first, *rest = self.plain
        return [{**first, "metadata": {**first["metadata"], WRITE_KEY: self.write_id}}, *rest]


class AgentRuntimeSession:
    """The SDK's `Session` protocol on agent-runtime's session store.

    `session_id` names the agent-runtime session (created on the first write).
    With `client=None` it uses the service API in this process: call
    `agent_runtime.services.database.init_database` first. With an
    `AsyncAgentRuntimeClient` it uses a remote agent-runtime over REST, with the
    same behaviour (the items are read back from the messages page's `metadata`).

    Event loops and threads (the SDK's sessions may be used from several: threads
    each running `asyncio.run`, `Runner.run_sync` from a fresh loop each time):

    - over REST, any loop and thread: the client keeps one connection pool per event
      loop (`AsyncAgentRuntimeClient` built from a URL). A client you built with your
      own `transport` or `http_client` serves the loop of its first request only, and
      raises `RuntimeError` at once from any other;
    - in-process, only the event loop that owns the database connection: the first
      to use it after `init_database` (usually the one that called it; `init_db`
      does not count). From any other, every method raises `RuntimeError`
      (`LOOP_RULE`) at once, before touching the database.

    Concurrency: `add_items` appends in one transaction; `pop_item` is a
    compare-and-set write on the session's version, retried when another writer got
    in first, so concurrent pops each return a different item and never lose an
    append; `clear_session` empties the session whatever its version. Over REST,
    `add_items` is a conditional append too (on the version it read), so that a write
    whose answer was lost (a timeout, a dropped connection, a 503) is never written
    twice, and a `pop_item` whose answer was lost never pops a second item: see each.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        *,
        client: AsyncAgentRuntimeClient | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        from agents.memory.session_settings import SessionSettings, coerce_session_settings

        self.session_id = session_id
        self.client = client
        # As the SDK's own sessions: `limit` here is get_items' default.
        self.session_settings = (
            SessionSettings()
            if session_settings is None
            else coerce_session_settings(session_settings)
        )
        # Over REST: the base the next append tries first (learnt from the last read
        # or write; a stale one costs a 412 and a read), and the append that raised
        # while it may have been written (`add_items` of the same items resumes it).
        self._hint: _Base | None = None
        self._unsettled: _Append | None = None

    async def _read(self) -> tuple[int | None, list[dict[str, Any]]]:
        """The session's version, then its stored messages (None, [] if unknown).

        Read in this order, a write in between makes the version stale, never the
        messages: a compare-and-set on that version then fails and is retried."""
        if self.client is not None:
            return await self._remote_messages()
        db = _connection()
        version = await store.get_session_version(db, self.session_id)
        if version is None:
            return None, []
        return version, await stored_messages(db, self.session_id)

    async def _remote_messages(
        self, limit: int | None = None
    ) -> tuple[int | None, list[dict[str, Any]]]:
        """Over REST: the session's version as its first page was read (a page's
        ETag), and its messages oldest first (with `limit`, the latest `limit`),
        each with its metadata; None, [] if the session is unknown."""
        assert self.client is not None
        rows: list[dict[str, Any]] = []
        version: int | None = None
        end = 0  # the position after the latest message
        after: str | None = None
        before: str | None = None
        try:
            while limit is None or len(rows) < limit:
                if limit is None:
                    page = await self.client.list_messages(
                        self.session_id, limit=_PAGE_SIZE, after=after
                    )
                else:
                    page = await self.client.list_messages(
                        self.session_id,
                        limit=min(limit - len(rows), _PAGE_SIZE),
                        before=before,
                        latest=before is None,
                    )
                if version is None:
                    version = page.version
                if page.items:
                    end = max(end, page.items[-1].position + 1)
                chunk = [m.model_dump(exclude={"position"}, exclude_unset=True) for m in page.items]
                if limit is None:
                    rows += chunk
                    if (after := page.next_cursor) is None:
                        break
                else:
                    rows[:0] = chunk
                    if (before := page.prev_cursor) is None:
                        break
        except NotFoundError:
            self._hint = _Base(None, 0)
            return None, []
        self._hint = _Base(version, end)
        return version, rows

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The items, oldest first; with `limit` (by default `session_settings.limit`),
        the latest `limit` of them."""
        from agents.memory.session_settings import resolve_session_limit

        limit = resolve_session_limit(limit, self.session_settings)
        if self.client is None:
            _connection()  # the loop rule, whatever the limit
        if limit is not None and limit <= 0:
            rows: list[dict[str, Any]] = []
        elif self.client is not None:
            _, rows = await self._remote_messages(limit)
        else:
            _, rows = await self._read()
            if limit is not None:
                rows = rows[-limit:]
        return [cast("TResponseInputItem", message_to_item(row)) for row in rows]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append `items` after the stored ones, in order, in one transaction.

        Over REST the append is conditional on the session's version (`If-Match`), and
        its first message carries the write's id (`WRITE_KEY` in its metadata). An
        attempt left unanswered (timeout, dropped connection, 503) is sent again on the
        same version, up to the client's `max_attempts`: of those attempts at most one
        can be written, and when a later one is refused (412) the message at the
        append's position tells whether an earlier one was. Items are never stored
        twice. If `add_items` still raises, the items may have been stored: calling
        `add_items` again with the same items, before any other write through this
        session object, resumes that write (stored once) rather than starting a new one.
        """
        if self.client is not None:
            pending, self._unsettled = self._unsettled, None
            if not items:
                return
            messages = [item_to_message(cast("Mapping[str, Any]", item)) for item in items]
            if pending is None or pending.plain != messages:
                pending = _Append(messages)
            try:
                await self._append(self.client, pending)
            except BaseException:
                if pending.in_doubt:
                    self._unsettled = pending
                raise
            return
        db = _connection()
        if not items:
            return
        messages = [item_to_message(cast("Mapping[str, Any]", item)) for item in items]
        await store.append_messages(db, self.session_id, messages, utc_now())

    async def _read_base(self, client: AsyncAgentRuntimeClient) -> _Base:
        """The session's version and number of messages, read now."""
        try:
            page = await client.list_messages(self.session_id, limit=1, latest=True)
        except NotFoundError:
            return _Base(None, 0)
        return _Base(page.version, page.items[-1].position + 1 if page.items else 0)

    async def _append(self, client: AsyncAgentRuntimeClient, pending: _Append) -> None:
        """Append `pending`'s messages: a conditional append, sent again while its
        answer is lost, rebased when another writer went first (see `add_items`)."""
        base = pending.base or self._hint
        self._hint = None
        failures = conflicts = 0
        while True:
            if base is None:
                base = await self._read_base(client)
            if base.version is None:
                # Create (or restore) the session, adding nothing: safe to send again.
                await client.append_messages(self.session_id, [])
                base = await self._read_base(client)
                continue
            if pending.base != base:
                pending.base, pending.in_doubt = base, False
            was_in_doubt, pending.in_doubt = pending.in_doubt, True
            try:
                version = await client.append_messages(
                    self.session_id, pending.marked, if_version=base.version, retry=False
                )
            except PreconditionFailedError:
                # This attempt was answered: not written. Another writer went first, or
                # an unanswered attempt on this base was written.
                pending.in_doubt = was_in_doubt
                if was_in_doubt and await self._written(client, pending):
                    pending.in_doubt = False
                    return
                pending.in_doubt = False  # on a version now gone: it never will be
                base = None
                conflicts += 1
                await asyncio.sleep(min(0.001 * 2**conflicts, 0.05))
                continue
            except _IN_DOUBT:
                failures += 1
                if failures >= client.retry.max_attempts:
                    raise
                await asyncio.sleep(client.retry.delay(failures, None))
                continue
            except AgentRuntimeError:
                pending.in_doubt = was_in_doubt  # answered: not written
                raise
            pending.in_doubt = False
            self._hint = _Base(version, base.position + len(pending.plain))
            return

    async def _written(self, client: AsyncAgentRuntimeClient, pending: _Append) -> bool:
        """Whether `pending` is stored: its first message at its base's position."""
        assert pending.base is not None
        position = pending.base.position
        after = encode_cursor("messages", position - 1) if position else None
        try:
            page = await client.list_messages(self.session_id, limit=1, after=after)
        except NotFoundError:
            return False
        return any(
            m.position == position and (m.metadata or {}).get(WRITE_KEY) == pending.write_id
            for m in page.items
        )

    async def _pop(self, version: int, rows: list[dict[str, Any]]) -> bool:
        """Store `rows` but the last if the session is still at `version`: whether it
        was (False: another writer went first, read again)."""
        keep = [_comparable(row) for row in rows[:-1]]
        if self.client is None:
            try:
                await store.write_messages(
                    _connection(), self.session_id, keep, utc_now(), if_version=version
                )
            except PreconditionFailedError:
                return False
            return True
        failures = 0
        in_doubt = False
        while True:
            try:
                written = await self.client.save_session(
                    self.session_id, keep, if_version=version, retry=False
                )
            except PreconditionFailedError:
                if not in_doubt:
                    return False
                # An unanswered attempt may have been written. It was not if the item is
                # still there, after the same messages: then pop again. Otherwise it is
                # gone: taken by this pop, or, at the same moment, by another one.
                _, now = await self._remote_messages()
                still = [_comparable(row) for row in now[: len(rows)]]
                return still != [*keep, _comparable(rows[-1])]
            except _IN_DOUBT:
                in_doubt = True
                failures += 1
                if failures >= self.client.retry.max_attempts:
                    raise
                await asyncio.sleep(self.client.retry.delay(failures, None))
                continue
            self._hint = _Base(written, len(keep))
            return True

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the latest item; None if there is none.

        A compare-and-set on the session's version. Over REST, an attempt left
        unanswered is sent again; refused then, the stored list tells whether the
        item is gone (popped by the lost attempt) or still there (pop again): one
        call never pops two items."""
        self._unsettled = None
        delay = 0.001
        while True:
            version, rows = await self._read()
            if version is None or not rows:
                return None
            if await self._pop(version, rows):
                return cast("TResponseInputItem", message_to_item(rows[-1]))
            await asyncio.sleep(delay)  # another writer went first: read again
            delay = min(delay * 2, 0.05)

    async def clear_session(self) -> None:
        """Remove every item (the session itself, its approvals and context stay)."""
        self._unsettled = None
        if self.client is not None:
            try:
                await self.client.session_stats(self.session_id)
            except NotFoundError:
                return
            # Unconditional: sending it again after a lost answer clears again.
            version = await self.client.save_session(self.session_id, [])
            self._hint = _Base(version, 0)
            return
        db = _connection()
        if await store.get_session_version(db, self.session_id) is None:
            return
        await store.write_messages(db, self.session_id, [], utc_now())


# ---------------------------------------------------------------------------
# Human in the loop: a run's tool approvals as agent-runtime approvals

# The agent context metadata key holding the paused run's serialised `RunState`.
RUN_STATE_KEY = "openai_agents_run_state"


def _arguments(raw: str | None) -> dict[str, Any]:
    """A tool call's JSON arguments as the approval's object (non-objects wrapped)."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {"arguments": raw}
    return value if isinstance(value, dict) else {"arguments": value}


class _Service(Protocol):
    """What the approval helpers call: `DatabaseService` (in this process, `db` its
    connection) and `RemoteDatabaseService` (over REST, `db` ignored) both are one."""

    async def load_agent_context(self, db: Any, session_id: str) -> dict[str, Any] | None: ...

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
    ) -> bool: ...

    async def create_approval(
        self,
        db: Any,
        session_id: str,
        call_id: str,
        tool_name: str,
        arguments: dict[str, Any],
        reason: str | None = None,
    ) -> tuple[dict[str, Any], bool]: ...

    async def wait_for_decision(self, call_id: str, timeout: float = 30.0) -> dict[str, Any]: ...  # noqa: ASYNC109

    async def claim_approval(
        self, db: Any, call_id: str, *, claimed_by: str | None = None
    ) -> tuple[str, dict[str, Any]]: ...

    async def report_result(
        self, db: Any, call_id: str, claim_token: str, status: str, result: Any = None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Store:
    """A session's service, the `db` to pass it, and the session id."""

    service: _Service
    db: Any
    session_id: str


def _store(session: AgentRuntimeSession | str) -> _Store:
    """Where `session` lives (a session id: in this process, on its event loop)."""
    if isinstance(session, str):
        return _Store(store.DatabaseService(), _connection(), session)
    if session.client is None:
        return _Store(store.DatabaseService(), _connection(), session.session_id)
    return _Store(RemoteDatabaseService(client=session.client), None, session.session_id)


async def _store_run_state(
    where: _Store, state: dict[str, Any] | None, agent_name: str = "openai-agents"
) -> None:
    """Keep (or with None, drop) the paused run's state in the session's agent context
    metadata, leaving the rest of the context as it was."""
    context = await where.service.load_agent_context(where.db, where.session_id)
    if context is None:
        if state is None:
            return
        now = utc_now()
        context = {
            "current_agent": agent_name,
            "agent_history": [],
            "metadata": {},
            "created_at": now,
            "last_switch_at": None,
            "switch_count": 0,
        }
    metadata = dict(context["metadata"] or {})
    if state is None:
        if RUN_STATE_KEY not in metadata:
            return
        del metadata[RUN_STATE_KEY]
    else:
        metadata[RUN_STATE_KEY] = state
    saved = await where.service.put_agent_context(
        where.db,
        where.session_id,
        context["current_agent"],
        context["agent_history"],
        metadata,
        context["created_at"],
        context["last_switch_at"],
        context["switch_count"],
    )
    if not saved:
        raise LookupError(f"session {where.session_id!r} does not exist (or is deleted)")


async def load_run_state(session: AgentRuntimeSession | str) -> dict[str, Any] | None:
    """The serialised `RunState` of the session's paused run (`RunState.to_json()`),
    or None when no run is waiting for approvals. `session`: an `AgentRuntimeSession`
    (in-process or over REST, as it is built), or a session id (in-process)."""
    where = _store(session)
    context = await where.service.load_agent_context(where.db, where.session_id)
    if context is None:
        return None
    state = (context["metadata"] or {}).get(RUN_STATE_KEY)
    return cast("dict[str, Any] | None", state)


async def submit_interruptions(
    result: RunResult, session: AgentRuntimeSession | str, *, reason: str | None = None
) -> list[str]:
    """Record a paused run's approvals (`result.interruptions`, the tool calls of
    tools with `needs_approval`) as agent-runtime approvals of the session, pending,
    and keep the run's state durably (`RUN_STATE_KEY` of the session's agent context
    metadata) so any process can resume it. Returns the call ids.

    `session`: an `AgentRuntimeSession` (in-process, or over REST when built with
    `client=`), or a session id (in-process)."""
    where = _store(session)
    state = result.to_state()
    # The state first: an approval a reviewer can see always has a run to resume.
    await _store_run_state(where, state.to_json(), result.last_agent.name)
    call_ids = []
    for item in result.interruptions:
        call_id = item.call_id
        if call_id is None:
            raise ValueError(f"tool approval item without a call id: {item!r}")
        await where.service.create_approval(
            where.db, where.session_id, call_id, item.name or "", _arguments(item.arguments), reason
        )
        call_ids.append(call_id)
    return call_ids


async def resume_run(
    agent: Agent[Any],
    session: AgentRuntimeSession,
    *,
    timeout: float = 300.0,  # noqa: ASYNC109 - as `wait_for_decision`
    claimed_by: str | None = None,
    **run_kwargs: Any,
) -> RunResult | None:
    """Resume the session's paused run once every approval it waits for is decided
    (in-process, or over REST when `session` was built with `client=`).

    Waits (up to `timeout` seconds for each; `TimeoutError` if one is still pending)
    for the decisions, applies them to the run's `RunState` (`state.approve`, or
    `state.reject` with the reviewer's message), claims every approved call
    (`claim_approval`) so only one process runs it, runs the agent on, reports each
    claimed call's output (`report_result`), and records the next pause, if any,
    with `submit_interruptions`. Returns the run's result, or None when there is no
    paused run or another process has claimed its calls (it resumes the run).

    An approval whose arguments the reviewer edited is rejected with a message
    naming the edited arguments: the SDK runs a call with its own arguments only.
    """
    from agents import Runner, RunState
    from agents.items import ToolCallOutputItem

    where = _store(session)
    service = where.service
    data = await load_run_state(session)
    if data is None:
        return None
    state = await RunState.from_json(agent, data)
    claims: dict[str, str] = {}
    for item in state.get_interruptions():
        call_id = item.call_id
        assert call_id is not None
        approval = await service.wait_for_decision(call_id, timeout)
        status = approval["status"]
        if status == ApprovalStatus.PENDING:
            raise TimeoutError(f"approval {call_id!r} is still pending after {timeout}s")
        if status in APPROVED_OR_LATER and approval["edited_arguments"] is None:
            try:
                claims[call_id], _ = await service.claim_approval(
                    where.db, call_id, claimed_by=claimed_by
                )
            except ConflictError:
                return None  # claimed by another process (whose lease holds), or already run
            state.approve(item)
        elif status in APPROVED_OR_LATER:
            edited = json.dumps(approval["edited_arguments"], ensure_ascii=False)
            state.reject(
                item,
                rejection_message=approval["message"]
                or f"The reviewer changed the arguments to {edited}; call the tool with them.",
            )
        else:  # rejected, cancelled, expired
            state.reject(item, rejection_message=approval["message"])
    # The state stays stored while the run goes on: a process that crashes here
    # leaves its claims to lapse, and another resumes the run (taking them over).
    try:
        result = await Runner.run(agent, state, session=session, **run_kwargs)
    except BaseException:
        await _store_run_state(where, None)
        for call_id, token in claims.items():
            await service.report_result(where.db, call_id, token, ApprovalStatus.FAILED)
        raise
    outputs = {
        item.raw_item.get("call_id") if isinstance(item.raw_item, dict) else None: item
        for item in result.new_items
        if isinstance(item, ToolCallOutputItem)
    }
    for call_id, token in claims.items():
        output = outputs.get(call_id)
        await service.report_result(
            where.db,
            call_id,
            token,
            ApprovalStatus.EXECUTED if output is not None else ApprovalStatus.FAILED,
            _json_result(output.output) if output is not None else None,
        )
    if result.interruptions:
        await submit_interruptions(result, session)
    else:
        await _store_run_state(where, None)
    return result


def _json_result(value: Any) -> Any:
    """A tool's output as JSON (its text when it is not JSON-serialisable)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)


async def run_with_approvals(
    agent: Agent[Any],
    input: str | list[TResponseInputItem],
    session: AgentRuntimeSession,
    *,
    timeout: float = 300.0,  # noqa: ASYNC109 - as `wait_for_decision`
    claimed_by: str | None = None,
    **run_kwargs: Any,
) -> RunResult | None:
    """`Runner.run` with human approval through agent-runtime: each pause's tool
    calls become approvals (`submit_interruptions`) and the run resumes when they
    are decided (`resume_run`), until it finishes. None if another process took
    the run over (it claimed the approved calls)."""
    from agents import Runner

    result: RunResult | None = await Runner.run(agent, input, session=session, **run_kwargs)
    if result is not None and result.interruptions:
        await submit_interruptions(result, session)
    while result is not None and result.interruptions:  # resume_run records each next pause
        result = await resume_run(
            agent, session, timeout=timeout, claimed_by=claimed_by, **run_kwargs
        )
    return result
