"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for the load generator.

httpx saturated a core at ~190 requests/s while the server used a quarter of one (measured
on the 2-core machine), so it measured the client rather than the server. This client
does only what the workload needs: one request at a time per connection, JSON bodies
(or bytes already encoded), responses with Content-Length (what uvicorn sends for
FastAPI's and Starlette's responses); `exchange` also returns the response headers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["Connection", "HTTPError"]


class HTTPError(Exception):
    pass


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def connect(self) -> None:
        """Open the connection now (it is otherwise opened by the first request)."""
        try:
            await self._open()
        except OSError as exc:
            raise HTTPError(f"connect: {type(exc).__name__}: {exc}") from exc

    @property
    def local_port(self) -> int | None:
        """This side's port while connected (to find the server's end in /proc/net/tcp)."""
        if self._writer is None:
            return None
        return int(self._writer.get_extra_info("sockname")[1])

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
            self._reader = self._writer = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """(status, body); the connection is dropped (and reopened next time) on error."""
        status, _, reply = await self.exchange(method, path, body)
        return status, reply

    async def exchange(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body); `body` is JSON-encoded unless
        it is bytes already. The connection is dropped (and reopened next time) on error."""
        try:
            return await self._request(method, path, body)
        except (OSError, asyncio.IncompleteReadError, ValueError, HTTPError) as exc:
            if self._writer is not None:
                self._writer.close()
            self._reader = self._writer = None
            raise HTTPError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def _request(
        self, method: str, path: str, body: Any
    ) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await self._open()
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(payload)}\r\n\r\n"
        writer.write(head.encode() + payload)
        await writer.drain()
        status_line, *header_lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers = {}
        for line in header_lines:
            if not line:
                continue
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        if "content-length" not in headers:
            raise HTTPError("response without Content-Length")
        return status, headers, await reader.readexactly(int(headers["content-length"]))
