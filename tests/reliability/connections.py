"""Keep-alive HTTP connections spread evenly over the workers of a uvicorn server.

uvicorn's workers share one listening socket and a connection stays with the
worker that accepted it. Connections opened in a burst mostly land on one worker
(measured: 64 of 64 on one of 4 workers), which would turn a "4 workers" test into
a one-process test. So connections are opened one by one, the worker that accepted
each is read from /proc (Linux), and each worker keeps an equal share.

The client itself is minimal, like benchmarks/workloads/httpclient.py (httpx costs
a core at ~200 requests/s on the 2-core machine), plus request and response
headers. A connection that fails is not reopened: it would land on any worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Response", "Unanswered", "WorkerConnection", "spread_connections", "worker_pids"]

OPEN_ATTEMPTS_PER_CONNECTION = 20


class Unanswered(Exception):
    """The request got no (complete) answer: the connection failed or was closed."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class WorkerConnection:
    """One HTTP/1.1 keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self.local_port: int = writer.get_extra_info("sockname")[1]
        self.worker: int | None = None  # pid of the worker that accepted it, once known
        self._host = "{}:{}".format(*writer.get_extra_info("peername")[:2])
        self._broken = False

    @classmethod
    async def open(cls, host: str, port: int) -> WorkerConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        if self._broken:
            raise Unanswered("connection already failed")
        try:
            return await self._request(method, path, body, headers or {})
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self._broken = True
            self._writer.close()
            raise Unanswered(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def _request(
        self, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> Response:
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        for name, value in headers.items():
            head += f"{name}: {value}\r\n"
        head += f"Content-Length: {len(payload)}\r\n\r\n"
        self._writer.write(head.encode() + payload)
        await self._writer.drain()
        status_line, *lines = (
            (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        )
        status = int(status_line.split(" ", 2)[1])
        response_headers = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            response_headers[name.strip().lower()] = value.strip()
        length = response_headers.get("content-length")
        if length is None and status not in (204, 304):
            raise ValueError("response without Content-Length")
        content = await self._reader.readexactly(int(length or 0))
        return Response(status, response_headers, content)

    async def close(self) -> None:
        self._broken = True
        self._writer.close()
        with contextlib.suppress(OSError):  # already reset by the server
            await self._writer.wait_closed()


def worker_pids(master_pid: int) -> set[int]:
    """The processes uvicorn's master started (its workers, and multiprocessing's
    resource tracker, which accepts nothing)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == master_pid:
            children.add(int(stat.parent.name))
    return children


def _socket_owners(pids: set[int]) -> dict[int, int]:
    """Socket inode -> pid, for the sockets the processes `pids` hold."""
    owners = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = fd.readlink().name
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


def _accepted_by(server_port: int, pids: set[int]) -> dict[int, int]:
    """Client port -> pid of the worker holding the server side of the connection."""
    owners = _socket_owners(pids)
    accepted = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if state == "01" and int(local.split(":")[1], 16) == server_port and inode in owners:
            accepted[int(remote.split(":")[1], 16)] = owners[inode]
    return accepted


async def spread_connections(
    url: str, master_pid: int, count: int, workers: int
) -> list[WorkerConnection]:
    """`count` open connections to the server at `url`, an equal share held by each
    of its `workers` workers, in round-robin order of worker."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pids = worker_pids(master_pid)
    share = math.ceil(count / workers)
    kept: dict[int, list[WorkerConnection]] = {}
    for _ in range(OPEN_ATTEMPTS_PER_CONNECTION * count):
        if sum(len(v) for v in kept.values()) >= count:
            break
        connection = await WorkerConnection.open(host, port)
        # Answered: the worker has accepted the connection (and is idle again).
        assert (await connection.request("GET", "/health/live")).status == 200
        worker = _accepted_by(port, pids).get(connection.local_port)
        if worker is None or len(kept.setdefault(worker, [])) >= share:
            await connection.close()
            continue
        connection.worker = worker
        kept[worker].append(connection)
    spread = Counter({pid: len(v) for pid, v in kept.items()})
    if sum(spread.values()) < count or len(spread) != workers:
        for connection in (c for v in kept.values() for c in v):
            await connection.close()
        raise RuntimeError(f"could not spread {count} connections over {workers} workers: {spread}")
    rounds = itertools.zip_longest(*kept.values())
    return [c for connections in rounds for c in connections if c is not None][:count]
