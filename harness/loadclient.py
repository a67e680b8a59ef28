"""A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator of the
benchmarks and of the reliability tests.

httpx saturated a core at ~190 requests/s while the server used a quarter of one
(measured on the 2-core machine), so it measured the client rather than the server.
This client does only what a load needs: one request at a time per connection, JSON
bodies (or bytes already encoded), extra request headers, responses with
Content-Length (what uvicorn sends for FastAPI's and Starlette's responses; 204 and
304 may have none).

A connection that fails is dropped. With `reconnect=True` (the default) the next
request opens a new one; with `reconnect=False` every later request fails too: a
connection held by a known uvicorn worker must not silently land on another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Connection", "Response", "Unanswered"]


class Unanswered(Exception):
    """The request got no (complete) answer: the connection failed or was closed."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Connection:
    """One keep-alive connection to `host`:`port`, opened by `connect()` or by the
    first request; one request at a time."""

    def __init__(self, host: str, port: int, *, reconnect: bool = True) -> None:
        self.host, self.port, self.reconnect = host, port, reconnect
        self.worker: int | None = None  # pid of the worker that accepted it, once known
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._broken = False

    @classmethod
    async def open(cls, host: str, port: int, *, reconnect: bool = True) -> Connection:
        """A connection, connected."""
        connection = cls(host, port, reconnect=reconnect)
        await connection.connect()
        return connection

    async def connect(self) -> None:
        """Open the connection now (it is otherwise opened by the first request)."""
        try:
            await self._open()
        except OSError as exc:
            self._drop()
            raise Unanswered(f"connect: {type(exc).__name__}: {exc}") from exc

    @property
    def local_port(self) -> int | None:
        """This side's port while connected (to find the server's end in /proc/net/tcp)."""
        if self._writer is None:
            return None
        return int(self._writer.get_extra_info("sockname")[1])

    async def close(self) -> None:
        writer = self._writer
        self._drop()
        if writer is not None:
            with contextlib.suppress(OSError):  # already reset by the server
                await writer.wait_closed()

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """The response; `body` is JSON-encoded unless it is bytes already. Unanswered
        (and the connection dropped) if no complete response arrives."""
        try:
            return await self._request(method, path, body, headers)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self._drop()
            raise Unanswered(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._broken:
            raise ConnectionError("connection already failed")
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        self._broken = not self.reconnect

    async def _request(
        self, method: str, path: str, body: Any, headers: dict[str, str] | None
    ) -> Response:
        reader, writer = await self._open()
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        head += f"Content-Length: {len(payload)}\r\n\r\n"
        writer.write(head.encode() + payload)
        await writer.drain()
        received = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = received.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        response_headers = {}
        for line in filter(None, lines):
            key, _, text = line.partition(":")
            response_headers[key.strip().lower()] = text.strip()
        length = response_headers.get("content-length")
        if length is None and status not in (204, 304):
            raise ValueError("response without Content-Length")
        return Response(status, response_headers, await reader.readexactly(int(length or 0)))
