"""`agent-runtime serve` under many, slow or idle connections: real server processes
(`test_serve_*`), started with a low soft limit of open files as a default systemd
unit or shell gives, so that serve's own start-up (raising it), its protocol (the
request head deadline, the connection cap) and its log limits are what is tested.
Then the log limit itself, in-process.

The measured figures are printed (`pytest -s`): the time a fresh client waited, when
the half-open connections were closed, how many lines the server logged.
"""

from __future__ import annotations

import logging
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from agent_runtime.cli.connections import (
    ACCEPT_FAILED,
    ACCEPT_RETRY_FAILED,
    AT_CEILING,
    OVER_LIMIT,
    RepeatedLogLimit,
)
from harness.ports import LOOPBACK
from harness.servers import LiveServer, ServerStartError, start_serve

NOFILE = resource.RLIMIT_NOFILE
LOW = 1024  # the soft limit of open files a systemd service or a shell starts with
HALF_OPEN = 1100  # connections that send part of a request head, then nothing
HEADER_TIMEOUT = 3.0  # AGENT_RUNTIME__HEADER_TIMEOUT_SECONDS of the big test
CLOSE_MARGIN = 5.0  # after the header timeout, by when every half-open one must be closed
FRESH_WITHIN = 2.0  # how long a fresh client may wait for /health/live meanwhile
PARTIAL_HEAD = b"GET /health/live HTTP/1.1\r\nHost: x"  # no end of head
HEAD = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
OVERLOAD_LINES = (ACCEPT_FAILED, ACCEPT_RETRY_FAILED, AT_CEILING, "Traceback")


@pytest.fixture(scope="module")
def many_sockets() -> Iterator[int]:
    """This process opens more than a thousand sockets: its soft limit of open files
    up to its hard limit (put back after). Its hard limit, which the servers inherit."""
    soft, hard = resource.getrlimit(NOFILE)
    wanted = 2 * HALF_OPEN + 500
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard limit of open files is {hard}: {wanted} needed")
    raised = max(soft, wanted) if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(NOFILE, (raised, hard))
    yield hard
    resource.setrlimit(NOFILE, (soft, hard))


@contextmanager
def serve(
    log_dir: Path, *, open_files: tuple[int, int] | None = None, **settings: object
) -> Iterator[LiveServer]:
    """`agent-runtime serve` (one worker) on a new SQLite database; stopped at the end."""
    env = {"AGENT_RUNTIME__DB_URL": f"sqlite:///{log_dir}/agent_runtime.db"}
    env |= {f"AGENT_RUNTIME__{k.upper()}": str(v) for k, v in settings.items()}
    try:
        server = start_serve(env, log_dir, open_files=open_files)
    except ServerStartError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


def connect(server: LiveServer, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection((LOOPBACK, server.port), timeout=5)
    if data:
        sock.sendall(data)
    return sock


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes `sock` within `timeout` seconds (reading what it sends)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def read_response(sock: socket.socket) -> bytes:
    """One response to /health/live (its body is short: read until it is all there)."""
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def wait_closed(socks: list[socket.socket], opened_at: list[float], limit: float) -> list[float]:
    """For each socket, how long after it was opened the server closed it (until
    `limit` seconds from now; the ones left open are missing from the list)."""
    selector = selectors.DefaultSelector()
    for n, sock in enumerate(socks):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, n)
    after: list[float] = []
    deadline = time.monotonic() + limit
    while len(after) < len(socks) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            try:
                if socks[key.data].recv(65536):
                    continue  # something was said: wait for the end
            except BlockingIOError:
                continue
            except ConnectionError:
                pass
            after.append(time.monotonic() - opened_at[key.data])
            selector.unregister(socks[key.data])
    selector.close()
    return after


def overload_lines(server: LiveServer) -> list[str]:
    return lines_saying(server, *OVERLOAD_LINES)


def lines_saying(server: LiveServer, *texts: str) -> list[str]:
    return [line for line in server.errors().splitlines() if any(t in line for t in texts)]


# --- many half-open connections ---------------------------------------------------------


def test_serve_answers_a_fresh_client_among_1100_half_open_connections_then_closes_them(
    many_sockets, tmp_path
):
    hard = many_sockets
    with serve(tmp_path, open_files=(LOW, hard), header_timeout_seconds=HEADER_TIMEOUT) as server:
        soft_now = resource.prlimit(server.pid, NOFILE)[0]
        socks, opened_at = [], []
        for _ in range(HALF_OPEN):
            opened_at.append(time.monotonic())
            socks.append(connect(server, PARTIAL_HEAD))
        start = time.monotonic()
        fresh = httpx.get(f"{server.url}/health/live", timeout=10)
        waited = time.monotonic() - start
        try:
            closed_after = wait_closed(socks, opened_at, HEADER_TIMEOUT + CLOSE_MARGIN + 5)
        finally:
            for sock in socks:
                sock.close()
        after = httpx.get(f"{server.url}/health/live", timeout=10)
    lines = server.errors().splitlines()
    print(
        f"\nfresh client answered in {waited:.3f} s; {len(closed_after)} of {HALF_OPEN} "
        f"half-open connections closed {min(closed_after, default=0):.2f} to "
        f"{max(closed_after, default=0):.2f} s after they opened; {len(lines)} log lines"
    )

    assert soft_now == hard, "serve raised its soft limit of open files to the hard one"
    assert fresh.status_code == 200
    assert waited < FRESH_WITHIN
    assert len(closed_after) == HALF_OPEN
    assert min(closed_after) >= HEADER_TIMEOUT - 0.5
    assert max(closed_after) <= HEADER_TIMEOUT + CLOSE_MARGIN
    assert after.status_code == 200
    assert overload_lines(server) == []
    assert lines_saying(server, f"open files limit raised from {LOW} to {hard}")
    assert len(lines) < 30, "\n".join(lines[-30:])


def test_serve_out_of_descriptors_logs_a_few_lines_and_recovers(many_sockets, tmp_path):
    """The hard limit cannot be raised: more half-open connections than descriptors.
    The head deadline is long, so they stay while the log is watched."""
    with serve(tmp_path, open_files=(LOW, LOW), header_timeout_seconds=60) as server:
        socks = [connect(server, PARTIAL_HEAD) for _ in range(HALF_OPEN)]
        time.sleep(5)
        during = overload_lines(server)
        lines_during = len(server.errors().splitlines())
        for sock in socks:
            sock.close()
        start = time.monotonic()
        recovered = None
        while recovered is None and time.monotonic() - start < 15:
            try:
                recovered = httpx.get(f"{server.url}/health/live", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        recovered_in = time.monotonic() - start
        again = httpx.get(f"{server.url}/health/live", timeout=5)
    print(
        f"\nout of descriptors: {len(during)} overload lines in 5 s "
        f"({lines_during} log lines in all); answered again {recovered_in:.2f} s after the "
        f"connections closed\n" + "\n".join(during)
    )

    assert lines_saying(server, f"open files limit {LOW} (the hard limit) is too low")
    assert len(during) <= 5, "\n".join(during[:20])
    assert lines_during < 40, server.errors()[-5000:]
    assert recovered is not None and recovered.status_code == 200
    assert again.status_code == 200
    assert len(overload_lines(server)) <= 6, "\n".join(overload_lines(server)[:20])


# --- the request head deadline, keep-alive, the connection cap ---------------------------

SHORT = 2.0  # the head deadline of the server below
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def short(tmp_path_factory) -> Iterator[LiveServer]:
    """A server with a short head deadline and few connections (uvicorn's own
    keep-alive timeout: 5 s)."""
    log_dir = tmp_path_factory.mktemp("short")
    with serve(log_dir, header_timeout_seconds=SHORT, max_connections=MAX_CONNECTIONS) as server:
        yield server


@pytest.mark.parametrize("sends", [b"", PARTIAL_HEAD], ids=["nothing", "part-of-a-head"])
def test_serve_closes_a_connection_without_a_whole_head_in_time(short, sends):
    sock = connect(short, sends)
    start = time.monotonic()

    closed = closed_by_server(sock, SHORT + 3)
    took = time.monotonic() - start
    sock.close()

    assert closed
    assert SHORT - 0.5 <= took <= SHORT + 3


def test_serve_closes_a_head_trickled_past_the_deadline(short):
    """Bytes keep coming, one every 0.2 s: the deadline is for the whole head."""
    endless = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
    sock = connect(short)
    start = time.monotonic()
    closed_at = None
    for byte in endless:
        try:
            sock.sendall(bytes([byte]))
            if closed_by_server(sock, 0.2):
                closed_at = time.monotonic() - start
        except OSError:
            closed_at = time.monotonic() - start
        if closed_at is not None or time.monotonic() - start > SHORT + 3:
            break
    sock.close()

    assert closed_at is not None
    assert SHORT - 0.5 <= closed_at <= SHORT + 3


def test_serve_keeps_an_idle_keep_alive_connection_past_the_head_deadline(short):
    sock = connect(short, HEAD)
    first = read_response(sock)
    time.sleep(SHORT + 1)  # idle: uvicorn's keep-alive timeout (5 s) holds
    sock.sendall(HEAD + HEAD)  # and two requests at once (pipelined)
    second = read_response(sock)
    third = second if second.count(b"HTTP/1.1 200") > 1 else second + read_response(sock)
    sock.close()

    assert first.startswith(b"HTTP/1.1 200")
    assert third.count(b"HTTP/1.1 200") == 2


def test_serve_times_the_head_of_a_later_request_from_its_first_byte(short):
    sock = connect(short, HEAD)
    first = read_response(sock)
    time.sleep(1)
    sock.sendall(PARTIAL_HEAD)
    start = time.monotonic()

    closed = closed_by_server(sock, SHORT + 3)
    took = time.monotonic() - start
    sock.close()

    assert first.startswith(b"HTTP/1.1 200")
    assert closed
    assert SHORT - 0.5 <= took <= SHORT + 3


def test_serve_does_not_cut_a_slow_body(short):
    """Once the head is in, the deadline is over: a body may take longer."""
    body = b'[{"role": "user", "content": "slowly"}]'
    head = (
        b"POST /sessions/slow-body HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    sock = connect(short, head)
    for part in (body[:10], body[10:20], body[20:]):
        time.sleep(SHORT / 2)
        sock.sendall(part)
    answer = read_response(sock)
    sock.close()

    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_serve_answers_503_beyond_max_connections(short):
    held = [connect(short) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # accepted
        over = httpx.get(f"{short.url}/health/live", timeout=5)
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    under = httpx.get(f"{short.url}/health/live", timeout=5)

    assert over.status_code == 503
    assert under.status_code == 200


def test_serve_workers_each_close_late_heads(tmp_path):
    """uvicorn's workers are spawned processes: each runs serve's protocol."""
    env = {
        "AGENT_RUNTIME__DB_URL": f"sqlite:///{tmp_path}/agent_runtime.db",
        "AGENT_RUNTIME__HEADER_TIMEOUT_SECONDS": str(SHORT),
    }
    try:
        server = start_serve(env, tmp_path, workers=2)
        server.wait_for_workers()
    except ServerStartError as exc:
        pytest.fail(str(exc))
    try:
        socks = [connect(server, PARTIAL_HEAD) for _ in range(40)]
        opened_at = [time.monotonic()] * len(socks)
        closed_after = wait_closed(socks, opened_at, SHORT + 5)
        for sock in socks:
            sock.close()
    finally:
        server.stop()

    assert len(closed_after) == len(socks)
    assert max(closed_after) <= SHORT + 3


# --- the log limit, in-process ------------------------------------------------------------


def record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, exc_info)


def test_a_repeated_overload_report_is_let_through_once_per_interval_with_a_count():
    now = [100.0]
    limit = RepeatedLogLimit(ACCEPT_FAILED, interval=5, clock=lambda: now[0])
    error = OSError(24, "Too many open files")
    message = f"{ACCEPT_FAILED}\nsocket: <asyncio.TransportSocket fd=6>"

    first = record(message, error)
    passed = [limit.filter(first)]
    for _ in range(1000):
        now[0] += 0.004
        passed.append(limit.filter(record(message, error)))
    now[0] += 1.1
    later = record(message, error)
    passed.append(limit.filter(later))

    assert passed == [True] + [False] * 1000 + [True]
    assert first.getMessage() == f"{ACCEPT_FAILED}: [Errno 24] Too many open files" + (
        f" (open files limit: {resource.getrlimit(NOFILE)[0]})"
    )
    assert first.exc_info is None
    assert "(1000 more in the last 5 s not logged)" in later.getMessage()
    assert limit.filter(record("something else", error))


def test_the_limits_are_installed_on_the_loggers_that_report_overload():
    installed = {
        (name, f.prefix)
        for name in ("asyncio", "uvicorn.error", "agent_runtime")
        for f in logging.getLogger(name).filters
        if isinstance(f, RepeatedLogLimit)
    }

    assert installed == {
        ("asyncio", ACCEPT_FAILED),
        ("asyncio", ACCEPT_RETRY_FAILED),
        ("uvicorn.error", OVER_LIMIT),
        ("agent_runtime", AT_CEILING),
    }
