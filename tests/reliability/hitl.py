"""Human in the loop against live servers: approvals through the REST API, waits, and
the event stream (`GET /events`) read as a client reads it.

Used by test_hitl_workers.py and test_hitl_outage.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.fixtures.backends import Backend
from tests.fixtures.servers import LiveServer, start_uvicorn

__all__ = [
    "DECISIONS",
    "POOL_FLOOR_RETRY",
    "StreamEvent",
    "TimedWait",
    "approval_body",
    "as_logged",
    "create_approvals",
    "in_batches",
    "log_tracebacks",
    "open_files_at_least",
    "read_stream",
    "running_servers",
    "timed_wait",
]

T = TypeVar("T")
R = TypeVar("R")

# What a reviewer may decide, and the status each leaves the approval in.
DECISIONS = ("approved", "rejected", "cancelled")


def approval_body(session_id: str, call_id: str) -> dict[str, Any]:
    """A `POST /approvals` body."""
    return {
        "session_id": session_id,
        "call_id": call_id,
        "tool_name": "delete_file",
        "arguments": {"path": f"/tmp/{call_id}.csv", "force": True},
    }


async def in_batches(items: Iterable[T], size: int, work: Callable[[T], Awaitable[R]]) -> list[R]:
    """`work(item)` for every item, `size` at a time; results in the items' order."""
    items = list(items)
    results: list[R] = []
    for start in range(0, len(items), size):
        results += await asyncio.gather(*(work(item) for item in items[start : start + size]))
    return results


async def create_approvals(
    http: httpx.AsyncClient, session_id: str, call_ids: Iterable[str], batch: int = 25
) -> None:
    """Record pending approvals through the API; each must be answered 201."""

    async def create(call_id: str) -> None:
        response = await http.post("/approvals", json=approval_body(session_id, call_id))
        assert response.status_code == 201, response.text

    await in_batches(call_ids, batch, create)


@dataclass(frozen=True)
class TimedWait:
    """One `GET /approvals/{call_id}/wait` and its answer (status None: no HTTP answer)."""

    call_id: str
    started: float  # time.monotonic()
    ended: float
    status: int | None
    body: Any
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def approval_status(self) -> str | None:
        return self.body.get("status") if isinstance(self.body, dict) else None

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None

    def __str__(self) -> str:
        what = self.error or f"{self.approval_status or self.error_code or str(self.body)[:200]}"
        return f"wait {self.call_id} -> {self.status} {what} in {self.seconds:.2f} s"


async def timed_wait(http: httpx.AsyncClient, call_id: str, wait_seconds: float) -> TimedWait:
    """Ask the server to wait up to `wait_seconds` for the decision on `call_id`."""
    started = time.monotonic()
    try:
        response = await http.get(f"/approvals/{call_id}/wait", params={"timeout": wait_seconds})
    except httpx.HTTPError as exc:
        return TimedWait(call_id, started, time.monotonic(), None, None, repr(exc))
    ended = time.monotonic()
    try:
        body = response.json()
    except ValueError:
        body = response.text[:300]
    return TimedWait(call_id, started, ended, response.status_code, body)


# -- the event stream, as an EventSource client reads it ------------------------------------


@dataclass(frozen=True)
class StreamEvent:
    """One Server-Sent Event of `GET /events`: its `id:`, `event:` and parsed `data:`."""

    sse_id: str
    sse_event: str
    data: dict[str, Any]

    @property
    def id(self) -> int:
        return int(self.sse_id)


async def read_stream(response: httpx.Response) -> AsyncIterator[StreamEvent]:
    """The events of an open `text/event-stream` response (comments, the heartbeats,
    are skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield StreamEvent(
                    fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = (
                f"{fields[name]}\n{value}" if name == "data" and name in fields else value
            )


def as_logged(event: dict[str, Any]) -> dict[str, Any]:
    """An event as `GET /approvals/{id}/events` and the stream both describe it, with
    `created_at` as an instant (the two spell the UTC offset differently)."""
    return {**event, "created_at": datetime.fromisoformat(event["created_at"])}


# -- servers -------------------------------------------------------------------------------


@contextlib.contextmanager
def running_servers(
    database: str | Backend,
    log_dir: Path,
    count: int,
    *,
    workers: int,
    env: dict[str, str] | None = None,
) -> Iterator[list[LiveServer]]:
    """`count` uvicorn servers on `database` (a URL, or a backend with its settings),
    each in its own process group, started one after the other; all stopped (and
    their groups killed) afterwards."""
    servers: list[LiveServer] = []
    try:
        for _ in range(count):
            servers.append(
                start_uvicorn(database, log_dir, workers=workers, env=env, start_new_session=True)
            )
        yield servers
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.stop()
            if server.group_alive():
                server.kill()


# asyncpg (0.32) logs its pool's attempts to reconnect up to the pool's minimum size
# as a warning with the exception's traceback; not an error of the app (see test_outage).
POOL_FLOOR_RETRY = "Failed to restore the pool connection floor; retrying"


def log_tracebacks(server: LiveServer, *, excused: list[str] | None = None) -> list[str]:
    """Lines of the server's log that show an exception escaping the app: each
    traceback (with the line before it), and "Exception in ASGI application". A
    traceback right after asyncpg's POOL_FLOOR_RETRY warning is appended to `excused`
    instead, when given."""
    lines = server.errors().splitlines()
    found = []
    for i, line in enumerate(lines):
        if "Exception in ASGI application" in line:
            found.append(line)
        elif line.startswith("Traceback"):
            before = lines[i - 1] if i else ""
            # The line ends with the warning whatever the log format puts before it.
            if excused is not None and before.endswith(POOL_FLOOR_RETRY):
                excused.append(before)
            else:
                found.append(f"{before} / {line} / {' / '.join(lines[i + 1 : i + 6])}")
    return found


@contextlib.contextmanager
def open_files_at_least(needed: int) -> Iterator[int]:
    """Raise this process's soft limit of open files to at least `needed` (up to the
    hard limit) while in the block; servers started inside inherit it. Yields the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = soft
    if soft != resource.RLIM_INFINITY and soft < needed:
        limit = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        if limit != resource.RLIM_INFINITY and limit < needed:
            raise RuntimeError(f"open-file limit {limit} < {needed} needed (hard limit {hard})")
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
