"""Keep-alive HTTP connections spread evenly over the workers of a uvicorn server.

uvicorn's workers share one listening socket and a connection stays with the
worker that accepted it. Connections opened in a burst mostly land on one worker
(measured: 64 of 64 on one of 4 workers), which would turn a "4 workers" test into
a one-process test. So connections are opened one by one, the worker that accepted
each is read from /proc (harness/workers.py), and each worker keeps an equal share.

The client is the load client of harness/loadclient.py (httpx costs a core at ~200
requests/s on the 2-core machine). A connection that fails is not reopened: it
would land on any worker.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from urllib.parse import urlsplit

from harness.loadclient import Connection, Response, Unanswered
from harness.workers import accepted_by, worker_pids

__all__ = ["Response", "Unanswered", "WorkerConnection", "spread_connections"]

OPEN_ATTEMPTS_PER_CONNECTION = 20

# What the reliability tests call the connections `spread_connections` returns: each
# knows the pid of its worker (`.worker`) and is never reopened.
WorkerConnection = Connection


async def spread_connections(
    url: str, master_pid: int, count: int, workers: int
) -> list[Connection]:
    """`count` open connections to the server at `url`, an equal share held by each
    of its `workers` workers, in round-robin order of worker."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pids = worker_pids(master_pid)
    share = math.ceil(count / workers)
    kept: dict[int, list[Connection]] = {}
    for _ in range(OPEN_ATTEMPTS_PER_CONNECTION * count):
        if sum(len(v) for v in kept.values()) >= count:
            break
        connection = await Connection.open(host, port, reconnect=False)
        # Answered: the worker has accepted the connection (and is idle again).
        assert (await connection.request("GET", "/health/live")).status == 200
        worker = accepted_by(port, pids).get(connection.local_port or 0)
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
