"""The deployment a reliability test attacks: a new database migrated by the real
`aerich upgrade`, served by a multi-worker uvicorn in its own process group.

The process group lets a test kill the master and its workers at once (`kill -9`
of a whole service), and makes sure no worker outlives the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

from tests.fixtures.backends import Backend, Databases
from tests.fixtures.servers import LiveServer, start_uvicorn

__all__ = [
    "WORKERS",
    "fresh_backend",
    "log_problems",
    "uvicorn_group",
    "wait_for_log",
]

# Worker processes per backend: the 2 on one SQLite file, 4 on PostgreSQL
# (directly or through PgBouncer).
WORKERS = {"sqlite": 2, "postgres": 4, "pgbouncer": 4}

# uvicorn closes a keep-alive connection idle for 5 s (--timeout-keep-alive). The
# clients' connections are opened one by one to spread them over the workers: on a
# loaded machine (pytest-xdist workers share its cores) that took over 5 s, and the
# first ones were closed before the load began (unanswered at t=+0.0s).
KEEP_ALIVE = {"UVICORN_TIMEOUT_KEEP_ALIVE": "120"}

# Log lines that mean a request failed inside the server (5xx are also counted by
# the clients; these name the cause).
_PROBLEM = re.compile(
    r"database is locked|Traceback|unhandled error|database unavailable|Exception in ASGI"
    r"|prepared statement",
    re.IGNORECASE,
)


def fresh_backend(databases: Databases, name: str) -> Backend:
    """A new, empty database of backend `name`, migrated with `aerich upgrade`."""
    return databases.fresh(name)


@contextlib.contextmanager
def uvicorn_group(database: str | Backend, log_dir: Path, workers: int) -> Iterator[LiveServer]:
    """A ready uvicorn with `workers` workers on `database` (a URL, or a backend with
    its settings), in its own process group; afterwards stopped (SIGTERM) if still
    running, and its whole group killed."""
    server = start_uvicorn(
        database, log_dir, workers=workers, env=KEEP_ALIVE, start_new_session=True
    )
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()
        if server.group_alive():
            server.kill()


def log_problems(server: LiveServer) -> list[str]:
    """The lines of the server's log that report a failed request."""
    return [line for line in server.errors().splitlines() if _PROBLEM.search(line)]


async def wait_for_log(server: LiveServer, text: str, count: int, seconds: float) -> bool:
    """Wait until `text` appears `count` times in the server's log (at most `seconds`)."""
    deadline = time.monotonic() + seconds
    while server.errors().count(text) < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
