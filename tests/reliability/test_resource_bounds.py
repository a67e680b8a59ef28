"""Resource bounds: slow clients and huge requests cannot exhaust the server or its pool.

A real uvicorn process with a deliberately small PostgreSQL pool
(AGENT_RUNTIME__DB_POOL_MAX_SIZE=2) and a small body limit, on a new database of each
backend migrated by the real `aerich upgrade` (on SQLite the whole process shares one
connection, an even smaller "pool"). Proves:

- clients that trickle their request body over seconds (with Content-Length or
  chunked), or give up half-way, hold no database connection: meanwhile other
  clients' requests, more at once than the pool has connections, keep succeeding
  quickly, and PostgreSQL never sees more connections than the pool's maximum;
- clients that do not read a large response hold no database connection either
  (each request's transaction ends before its response is sent);
- a body over AGENT_RUNTIME__MAX_BODY_BYTES gets 413 with the JSON error body, whether
  its Content-Length announces it (answered before the body is sent) or a chunked
  body only turns out too large, and a flood of them leaves the server serving, its
  pool free and its memory flat.

What is not bounded here: uvicorn has no timeout for a body that never ends, so a
client trickling forever keeps its socket (not a database connection); a reverse proxy
in front of a public deployment should bound that.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.fixtures.backends import BACKENDS, PG_ADMIN_URL, Databases, aerich_ok
from tests.fixtures.servers import LiveServer, start_uvicorn

pytestmark = pytest.mark.timeout(120)

POOL_MAX = 2
MAX_BODY = 512 * 1024
SERVER_ENV = {
    "AGENT_RUNTIME__DB_POOL_MIN_SIZE": "1",
    "AGENT_RUNTIME__DB_POOL_MAX_SIZE": str(POOL_MAX),
    "AGENT_RUNTIME__DB_CONNECT_TIMEOUT": "2",
    "AGENT_RUNTIME__DB_COMMAND_TIMEOUT": "2",
    "AGENT_RUNTIME__MAX_BODY_BYTES": str(MAX_BODY),
}
SLOW_CLIENTS = 6  # three times the pool
TRICKLE_SECONDS = 4.0
NOT_READING = POOL_MAX + 2
BIG_MESSAGES = 15  # x 400 KB
CONCURRENT_PROBES = 2 * POOL_MAX + 1  # more requests at once than the pool has connections
# An unloaded save or load takes milliseconds; a request that had to wait for a slow
# client would take seconds (the trickle). One second is far from both.
FAST_BOUND = 1.0


@dataclass
class Bounded:
    backend: str
    url: str  # database URL
    server: LiveServer

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.server.url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port


def _backend_params() -> list[Any]:
    return [
        pytest.param(name, marks=[pytest.mark.postgres] if name == "postgres" else [], id=name)
        for name in ("sqlite", "postgres")
        if name in BACKENDS
    ]


@pytest.fixture(scope="module", params=_backend_params())
def bounded(
    request: pytest.FixtureRequest,
    databases: Databases,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Bounded]:
    """A server with a 2-connection pool and a 512 KiB body limit on a new database."""
    url = databases.empty(request.param)
    aerich_ok(url, "upgrade")
    server = start_uvicorn(url, tmp_path_factory.mktemp("bounds"), env=SERVER_ENV)
    try:
        yield Bounded(request.param, url, server)
    finally:
        server.stop()
    errors = server.errors()
    assert "Exception in ASGI application" not in errors, errors[-5000:]


# -- raw HTTP/1.1 over asyncio streams: what httpx would not do (trickle, stall) ----------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return int(status_line.split()[1]), headers, body


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def pieces(data: bytes, count: int) -> list[bytes]:
    size = -(-len(data) // count)
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass
class SlowUpload:
    path: str
    body: bytes
    chunked: bool
    abandon: bool = False  # close the socket half-way through the body
    status: int | None = None
    payload: Any = None
    finished: float = 0.0


async def slow_upload(address: tuple[str, int], upload: SlowUpload, seconds: float) -> None:
    """POST `upload.body` in 20 pieces spread over `seconds`, then read the answer."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        framing = (
            {"Transfer-Encoding": "chunked"}
            if upload.chunked
            else {"Content-Length": str(len(upload.body))}
        )
        writer.write(
            request_head("POST", upload.path, {"Content-Type": "application/json", **framing})
        )
        parts = pieces(upload.body, 20)
        for index, part in enumerate(parts):
            if upload.abandon and index == len(parts) // 2:
                return
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n" if upload.chunked else part)
            await writer.drain()
            await asyncio.sleep(seconds / len(parts))
        if upload.chunked:
            writer.write(b"0\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 10)
        upload.status, upload.payload = status, json.loads(body)
        upload.finished = time.monotonic()
    finally:
        writer.close()


@dataclass
class Probe:
    method: str
    status: int
    latency: float
    ended: float


async def probe(http: httpx.AsyncClient, until: float, probes: list[Probe]) -> None:
    """Until `until`: rounds of CONCURRENT_PROBES saves at once, then a load."""

    async def one(method: str, path: str, body: Any = None) -> None:
        started = time.monotonic()
        try:
            status = (await http.request(method, path, json=body)).status_code
        except httpx.HTTPError:  # e.g. a timeout: waited for a connection that never came
            status = 0
        ended = time.monotonic()
        probes.append(Probe(method, status, ended - started, ended))

    while time.monotonic() < until:
        session_id = f"probe-{uuid.uuid4().hex[:10]}"
        message = [{"role": "user", "content": "still served?"}]
        await asyncio.gather(
            *(one("POST", f"/sessions/{session_id}-{i}", message) for i in range(CONCURRENT_PROBES))
        )
        await one("GET", f"/sessions/{session_id}-0")
        await asyncio.sleep(0.05)


async def pool_connections(bounded: Bounded) -> int | None:
    """Connections the server holds to its PostgreSQL database now (None on SQLite)."""
    if bounded.backend != "postgres":
        return None
    database = urlsplit(bounded.url).path.lstrip("/")
    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = $1 AND application_name = 'agent-runtime'",
            database,
        )
    finally:
        await connection.close()
    return int(count)


async def sample_pool(bounded: Bounded, until: float, samples: list[int]) -> None:
    while time.monotonic() < until:
        count = await pool_connections(bounded)
        if count is None:
            return
        samples.append(count)
        await asyncio.sleep(0.2)


def check_probes(probes: list[Probe], what: str) -> dict[str, Any]:
    latencies = [p.latency for p in probes]
    figures = {
        "requests": len(probes),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }
    failed = [p for p in probes if not 200 <= p.status < 300]
    assert not failed, f"{what}: requests failed: {failed[:10]}"
    assert figures["max_ms"] <= FAST_BOUND * 1000, f"{what}: other clients slowed: {figures}"
    return figures


async def test_slow_uploads_hold_no_connection_and_do_not_block_other_clients(
    bounded: Bounded,
) -> None:
    content = "x" * 4096
    uploads = [
        SlowUpload(
            f"/sessions/slow-{i}-{uuid.uuid4().hex[:8]}",
            json.dumps([{"role": "user", "content": f"{i} {content}"}]).encode(),
            chunked=i % 2 == 1,
        )
        for i in range(SLOW_CLIENTS)
    ]
    abandoned = [
        SlowUpload(f"/sessions/gone-{i}", uploads[0].body, chunked=i % 2 == 1, abandon=True)
        for i in range(POOL_MAX + 1)
    ]
    probes: list[Probe] = []
    pool: list[int] = []
    started = time.monotonic()
    probe_until = started + TRICKLE_SECONDS - 0.5  # all probes run while the bodies trickle
    async with httpx.AsyncClient(base_url=bounded.server.url, timeout=10) as http:
        await asyncio.gather(
            *(slow_upload(bounded.address, u, TRICKLE_SECONDS) for u in uploads + abandoned),
            probe(http, probe_until, probes),
            sample_pool(bounded, probe_until, pool),
        )
        figures = check_probes(probes, "while slow clients upload")
        # The probes all ran while the slow bodies were still coming in; then those succeeded.
        last_probe = max(p.ended for p in probes)
        assert all(u.finished > last_probe for u in uploads)
        assert [u.status for u in uploads] == [200] * SLOW_CLIENTS, [u.payload for u in uploads]
        for upload in uploads:
            loaded = (await http.get(upload.path)).json()
            assert loaded["messages"] == json.loads(upload.body)
        for gone in abandoned:
            assert (await http.get(gone.path)).status_code == 404

        # Nothing leaked by the abandoned uploads: the whole pool is still there.
        after: list[Probe] = []
        await probe(http, time.monotonic() + 0.5, after)
        check_probes(after, "after the abandoned uploads")
        assert (await http.get("/health/ready")).status_code == 200
    if pool:
        assert max(pool) <= POOL_MAX, f"PostgreSQL connections of the server: {pool}"
    print(
        f"\n{bounded.backend}: {SLOW_CLIENTS} slow + {len(abandoned)} abandoned uploads over "
        f"{TRICKLE_SECONDS} s; other clients: {figures}; server's PostgreSQL connections "
        f"(max sampled): {max(pool) if pool else 'n/a'}; last probe at "
        f"{last_probe - started:.1f} s, first slow upload answered at "
        f"{min(u.finished for u in uploads) - started:.1f} s"
    )


async def test_clients_that_do_not_read_their_response_hold_no_connection(
    bounded: Bounded,
) -> None:
    # A session whose load is ~6 MB: more than the socket buffers take (4 MiB at most
    # here), so the server is stuck sending it to a client that does not read.
    session_id = f"big-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=bounded.server.url, timeout=10) as http:
        for i in range(BIG_MESSAGES):
            message = [{"role": "assistant", "content": f"{i}" + "y" * 400_000}]
            response = await http.post(f"/sessions/{session_id}/messages", json=message)
            assert response.status_code == 200, response.text

        readers = []
        for _ in range(NOT_READING):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, bounded.address)
            reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
            writer.write(request_head("GET", f"/sessions/{session_id}", {}))
            await writer.drain()
            readers.append((reader, writer))
        await asyncio.sleep(0.5)  # the server has loaded the session, and is stuck sending

        probes: list[Probe] = []
        pool: list[int] = []
        until = time.monotonic() + 2.0
        await asyncio.gather(probe(http, until, probes), sample_pool(bounded, until, pool))
        figures = check_probes(probes, "while clients do not read")
        if pool:
            assert max(pool) <= POOL_MAX, f"PostgreSQL connections of the server: {pool}"

        # Finally they read: each gets the whole session.
        for reader, writer in readers:
            status, _, body = await asyncio.wait_for(read_response(reader), 30)
            assert status == 200
            assert len(json.loads(body)["messages"]) == BIG_MESSAGES
            writer.close()
    print(f"\n{bounded.backend}: {NOT_READING} clients not reading ~6 MB; others: {figures}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def oversized_declared(address: tuple[str, int]) -> tuple[int, dict[str, Any], float]:
    """Announce a body one byte over the limit and send none of it: 413 straight away."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(
            request_head(
                "POST",
                "/sessions/too-big-declared",
                {"Content-Type": "application/json", "Content-Length": str(MAX_BODY + 1)},
            )
        )
        await writer.drain()
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        return status, json.loads(body), time.monotonic() - started
    finally:
        writer.close()


@dataclass
class ChunkedResult:
    status: int
    payload: Any
    sent_when_answered: int  # bytes of body sent when the 413 had arrived
    sent: int  # bytes of body sent in all


async def oversized_chunked(address: tuple[str, int], total: int) -> ChunkedResult:
    """Stream a chunked body of `total` bytes in 64 KiB chunks, as a client that does not
    look for an early answer would; note how much had been sent when the answer came."""
    reader, writer = await asyncio.open_connection(*address)
    sent, sent_when_answered = 0, None
    try:
        writer.write(
            request_head(
                "POST",
                "/sessions/too-big-chunked",
                {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            )
        )
        answer = asyncio.ensure_future(read_response(reader))
        chunk = b"[" + b" " * (64 * 1024 - 1)
        while sent < total:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.001)
            sent += len(chunk)
            chunk = b" " * len(chunk)
            if sent_when_answered is None and answer.done():
                sent_when_answered = sent
        status, _, body = await asyncio.wait_for(answer, 10)
        return ChunkedResult(status, json.loads(body), sent_when_answered or sent, sent)
    finally:
        writer.close()


async def test_an_oversized_body_is_413_and_exhausts_nothing(bounded: Bounded) -> None:
    status, body, seconds = await oversized_declared(bounded.address)
    assert status == 413 and body["error"]["code"] == "payload_too_large", body
    assert seconds < FAST_BOUND

    # The answer comes once the limit is passed, while the client is still sending;
    # the server reads and drops the rest of the body (memory stays flat, see below).
    chunked = await oversized_chunked(bounded.address, 64 * MAX_BODY)
    assert chunked.status == 413, chunked
    assert chunked.payload["error"]["code"] == "payload_too_large", chunked
    assert chunked.sent_when_answered < chunked.sent, chunked

    # A flood of them (16 x 8 MiB offered) while other clients work.
    pid = bounded.server.process.pid
    rss_before = rss_kib(pid)
    probes: list[Probe] = []
    pool: list[int] = []
    async with httpx.AsyncClient(base_url=bounded.server.url, timeout=10) as http:
        flood = asyncio.gather(
            *(oversized_chunked(bounded.address, 16 * MAX_BODY) for _ in range(8)),
            *(oversized_declared(bounded.address) for _ in range(8)),
        )
        until = time.monotonic() + 1.5
        results, _, _ = await asyncio.gather(
            flood, probe(http, until, probes), sample_pool(bounded, until, pool)
        )
        assert all((r.status if isinstance(r, ChunkedResult) else r[0]) == 413 for r in results), (
            results
        )
        figures = check_probes(probes, "during a flood of oversized bodies")
        assert (await http.get("/sessions/too-big-chunked")).status_code == 404
        assert (await http.get("/health/ready")).status_code == 200
    rss_growth_mib = (rss_kib(pid) - rss_before) / 1024
    # Bodies are cut at the limit, never buffered whole: 16 x 8 MiB would show here.
    assert rss_growth_mib < 64, f"server memory grew by {rss_growth_mib:.0f} MiB"
    if pool:
        assert max(pool) <= POOL_MAX, f"PostgreSQL connections of the server: {pool}"
    print(
        f"\n{bounded.backend}: 413 on declared length in {seconds * 1000:.0f} ms; chunked: 413 "
        f"when {chunked.sent_when_answered // 1024} KiB of {chunked.sent // 1024} KiB were "
        f"sent (limit {MAX_BODY // 1024} KiB); flood of 16: others "
        f"{figures}, server memory +{rss_growth_mib:.1f} MiB"
    )
