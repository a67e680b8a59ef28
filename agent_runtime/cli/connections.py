"""How `agent-runtime serve` holds up against many or slow connections.

- `raise_open_files_limit`: the soft limit of open files up to the hard one, before
  uvicorn starts (its workers inherit it), as Go and nginx do at start-up.
- `HeaderTimeoutProtocol`: uvicorn's h11 protocol with a deadline for each request
  head: a connection that has not sent a whole head within
  `AGENT_RUNTIME__HEADER_TIMEOUT_SECONDS` is closed (uvicorn has no such timeout;
  nginx calls it `client_header_timeout`). Idle keep-alive connections keep
  uvicorn's own timeout. Near its limit of open files (`connection_ceiling`), a
  worker closes new connections at once rather than run out: out of descriptors,
  asyncio's accept fails on every attempt, and a fresh client waits unaccepted.
- `limit_overload_logs`: out of file descriptors, asyncio reports every failed
  accept, thousands a second (and, once the server closes, each of the retries it
  scheduled meanwhile); uvicorn warns of every request refused over
  `limit_concurrency`. Each kind is let through once every `LOG_INTERVAL` seconds,
  with the count of those left out.

uvicorn's workers are spawned processes: they import this module when they unpickle
their configuration (which names `HeaderTimeoutProtocol`), and importing it installs
the log limits, before the worker accepts its first connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from agent_runtime.config import get_settings

__all__ = [
    "ACCEPT_FAILED",
    "ACCEPT_RETRY_FAILED",
    "AT_CEILING",
    "LOG_INTERVAL",
    "OVER_LIMIT",
    "OWN_DESCRIPTORS",
    "HeaderTimeoutProtocol",
    "RepeatedLogLimit",
    "connection_ceiling",
    "limit_overload_logs",
    "open_files_limit",
    "raise_open_files_limit",
]

logger = logging.getLogger("agent_runtime")

LOG_INTERVAL = 5.0  # seconds between two lines of one kind of overload report
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's, on EMFILE and the like
# asyncio's, for each accept retry it scheduled (one per failed accept) that finds the
# listening socket closed at shutdown.
ACCEPT_RETRY_FAILED = "Exception in callback BaseSelectorEventLoop._start_serving"
OVER_LIMIT = "Exceeded concurrency limit."  # uvicorn's, on each request over the limit
AT_CEILING = "open files limit nearly reached"  # ours, on each connection closed at once
# Descriptors a worker needs besides its clients' connections: the listening socket,
# the database pool and listener, SQLite files, log files, pipes, the metrics files...
OWN_DESCRIPTORS = 100
# Soft limits tried when the hard limit is "unlimited": never on Linux (its hard limit
# is finite), possible on macOS, whose kernel still refuses more than its own maximum.
_UNLIMITED_TRIES = (1 << 20, 10240)


def open_files_limit() -> tuple[int, int]:
    """This process's soft and hard limits of open files."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard limit; (before, after)."""
    soft, hard = open_files_limit()
    if soft == resource.RLIM_INFINITY:
        return soft, soft
    targets = _UNLIMITED_TRIES if hard == resource.RLIM_INFINITY else (hard,)
    for target in targets:
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        return soft, target
    return soft, soft


@functools.cache
def connection_ceiling() -> int:
    """How many connections this process can hold without running out of
    descriptors: its soft limit of open files, less `OWN_DESCRIPTORS`."""
    soft = open_files_limit()[0]
    return sys.maxsize if soft == resource.RLIM_INFINITY else max(soft - OWN_DESCRIPTORS, 1)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is late.

    The deadline runs from the connection's start for its first request, and from
    the first byte of each later one (between requests, an idle keep-alive
    connection is uvicorn's: `timeout_keep_alive`). It ends when the head is
    complete: a slow body or a long answer is not cut. Trickling the head byte by
    byte does not extend it.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = get_settings().header_timeout_seconds
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > connection_ceiling():
            logger.warning(
                AT_CEILING + " (%d open connections, at most %d): new ones are closed at once",
                len(self.connections),
                connection_ceiling(),
            )
            transport.close()
            return
        self._start_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        # Called on every arrival of data, and after a response for what the client
        # sent meanwhile (pipelining): where a head starts and where it completes.
        super().handle_events()
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            self._cancel_head_deadline()  # a whole head came (or the connection ends)
        elif self.conn.trailing_data[0]:
            self._start_head_deadline()  # part of a head is waiting for the rest

    def _start_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_late)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_late(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            if logger.isEnabledFor(logging.DEBUG):
                client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
                logger.debug(
                    "%s sent no whole request head in %g s: connection closed",
                    client,
                    self.header_timeout,
                )
            self.transport.close()


class RepeatedLogLimit(logging.Filter):
    """Lets the records whose message starts with `prefix` through once every
    `interval` seconds, as one line (the first line of the message and the
    exception's, no traceback), with the count of those dropped since the last."""

    def __init__(
        self,
        prefix: str,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.interval = interval
        self.clock = clock
        self.next_at = 0.0
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if not isinstance(message, str) or not message.startswith(self.prefix):
            return True
        now = self.clock()
        if now < self.next_at:
            self.dropped += 1
            return False
        self.next_at = now + self.interval
        line = record.getMessage().split("\n", 1)[0]
        if record.exc_info and record.exc_info[1] is not None:
            line = f"{line}: {record.exc_info[1]}"
            record.exc_info = record.exc_text = None
        if self.dropped:
            line += f" ({self.dropped} more in the last {self.interval:g} s not logged)"
            self.dropped = 0
        if self.prefix == ACCEPT_FAILED:
            line += f" (open files limit: {open_files_limit()[0]})"
        record.msg, record.args = line, None
        return True


def limit_overload_logs(interval: float = LOG_INTERVAL) -> None:
    """Install the `RepeatedLogLimit`s of this process (once: safe to call again)."""
    for name, prefix in (
        ("asyncio", ACCEPT_FAILED),
        ("asyncio", ACCEPT_RETRY_FAILED),
        ("uvicorn.error", OVER_LIMIT),
        ("agent_runtime", AT_CEILING),
    ):
        target = logging.getLogger(name)
        if not any(isinstance(f, RepeatedLogLimit) and f.prefix == prefix for f in target.filters):
            target.addFilter(RepeatedLogLimit(prefix, interval))


# In every process that imports the protocol: uvicorn's spawned workers too.
limit_overload_logs()
