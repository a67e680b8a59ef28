"""Every Prometheus metric of the service, defined once, and their text exposition.

Call sites record with one line each (`CACHE_HITS.inc()`, `observe_request(...)`);
`core/metrics_collect.py` sets the gauges read at scrape time, and `GET /metrics`
serves `exposition()`.

Several uvicorn workers: prometheus_client keeps each process's values in
memory-mapped files under `PROMETHEUS_MULTIPROC_DIR` when that variable is set
*before* prometheus_client is first imported (`agent-runtime serve` sets it to a
fresh private directory for its workers), and `exposition()` then sums every
worker's files, so any worker answers for all. Without the variable each process
keeps its values in memory (one worker, tests) and reports its own only. Which mode
is in force is read from prometheus_client itself, never from the environment:
the variable set after the import would change nothing.

A leaf module (prometheus_client and the standard library only): the services
it counts import it.
"""

from __future__ import annotations

import contextlib
import glob
import os
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)

__all__ = [
    "APPROVALS_PENDING",
    "APPROVALS_PENDING_OLDEST_SECONDS",
    "CONTENT_TYPE",
    "DB_POOL_IN_USE",
    "DB_POOL_SIZE",
    "DB_POOL_WAITING",
    "EVENT_STREAM_CLIENTS",
    "MESSAGES_PER_SAVE",
    "MESSAGE_CACHE_HITS",
    "MESSAGE_CACHE_MISSES",
    "MESSAGE_CACHE_STALE",
    "MULTIPROCESS",
    "MULTIPROC_DIR_ENV",
    "REQUEST_SECONDS",
    "RETENTION_RUNS",
    "UNMATCHED",
    "WAITERS",
    "exposition",
    "forget_dead_workers",
    "mark_this_worker_dead",
    "observe_request",
]

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Chosen by prometheus_client when it was imported: mmap files, or memory.
MULTIPROCESS: bool = values.ValueClass is not values.MutexValue
# The classic text format, what every Prometheus version reads (`generate_latest`
# writes it; prometheus_client >= 0.22 names 1.0.0 as its latest).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The `_created` series exist in one mode only (not in files): leave them out in both.
disable_created_metrics()

UNMATCHED = "unmatched"  # the route label of a request no route matched (404, or refused before)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# -- HTTP ---------------------------------------------------------------------------

REQUEST_SECONDS = Histogram(
    "agent_runtime_http_request_duration_seconds",
    "Time from receiving a request to the end of its answer (streams and waits "
    "included), by route template, method and status code.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# -- database pool (set at scrape time, and every second by each worker) -----------------

DB_POOL_SIZE = Gauge(
    "agent_runtime_db_pool_size",
    "Database connections open (PostgreSQL: the asyncpg pools of all workers; "
    "SQLite: 1 per worker).",
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "agent_runtime_db_pool_in_use",
    "Database connections taken from the pool (SQLite: the connection's lock held).",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "agent_runtime_db_pool_waiting",
    "Requests waiting for a database connection because every one is in use.",
    multiprocess_mode="livesum",
)

# -- approvals (one count query at scrape time, by the worker scraped) -----------------

APPROVALS_PENDING = Gauge(
    "agent_runtime_approvals_pending",
    "Tool calls waiting for a human decision (NaN: the database did not answer).",
    multiprocess_mode="mostrecent",
)
APPROVALS_PENDING_OLDEST_SECONDS = Gauge(
    "agent_runtime_approvals_pending_oldest_age_seconds",
    "Age of the oldest pending tool call (0 when none is pending).",
    multiprocess_mode="mostrecent",
)

# -- event hub -------------------------------------------------------------------------

WAITERS = Gauge(
    "agent_runtime_approval_waiters",
    "Callers waiting for a decision (GET /approvals/{call_id}/wait, wait_for_decision).",
    multiprocess_mode="livesum",
)
EVENT_STREAM_CLIENTS = Gauge(
    "agent_runtime_event_stream_clients",
    "Server-Sent Events streams open (GET /events, the console's live inbox).",
    multiprocess_mode="livesum",
)

# -- saves -------------------------------------------------------------------------------

MESSAGE_CACHE_HITS = Counter(
    "agent_runtime_message_cache_hits",
    "Saves that found the session's messages in this worker's cache.",
)
MESSAGE_CACHE_MISSES = Counter(
    "agent_runtime_message_cache_misses",
    "Saves that did not find the session's messages in this worker's cache.",
)
MESSAGE_CACHE_STALE = Counter(
    "agent_runtime_message_cache_stale",
    "Cache hits found outdated (another worker wrote the session since): the save "
    "read the stored messages instead.",
)
MESSAGES_PER_SAVE = Histogram(
    "agent_runtime_messages_written_per_save",
    "Messages inserted by one save or append (what changed, not the conversation's length).",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)

# -- retention ---------------------------------------------------------------------------

RETENTION_RUNS = Counter(
    "agent_runtime_retention_runs",
    "Runs of the periodic retention policy, by outcome: ok, unavailable (the "
    "database could not be reached), failed.",
    ["outcome"],
)

# -- recording -----------------------------------------------------------------------

_REQUEST_CHILDREN: dict[tuple[str, str, int], Any] = {}


def observe_request(route: Any, method: str, status: int, seconds: float) -> None:
    """Record one request's duration. `route` is what routing left in the scope (its
    `path` is the template: `/sessions/{session_id}`), None when nothing matched.

    The labelled child is looked up once per (route, method, status), not built on
    every request (`labels()` converts and validates each time).
    """
    path = UNMATCHED if route is None else getattr(route, "path", UNMATCHED)
    if method not in _METHODS:
        method = "other"  # any token is a method: keep the label's values bounded
    key = (path, method, status)
    child = _REQUEST_CHILDREN.get(key)
    if child is None:
        child = _REQUEST_CHILDREN[key] = REQUEST_SECONDS.labels(path, method, str(status))
    child.observe(seconds)


# -- exposition ------------------------------------------------------------------------


def _directory() -> str:
    return os.environ[MULTIPROC_DIR_ENV]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers(path: str | None = None) -> list[int]:
    """Mark dead the workers whose live gauges are in the directory but whose process
    is gone (killed without a shutdown: SIGKILL, out of memory), so that their last
    pool sizes and waiters stop counting. Counters and histograms keep their values:
    totals never go down. Returns the pids forgotten."""
    path = path or _directory()
    gone = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid_text = name[: -len(".db")].rpartition("_")[2]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            gone.add(int(pid_text))
    for pid in gone:
        with contextlib.suppress(FileNotFoundError):  # another worker got there first
            multiprocess.mark_process_dead(pid, path)
    return sorted(gone)


def mark_this_worker_dead() -> None:
    """At a worker's shutdown: its live gauges (pool, waiters, streams) stop counting."""
    if MULTIPROCESS:
        with contextlib.suppress(FileNotFoundError):
            multiprocess.mark_process_dead(os.getpid(), _directory())


def exposition() -> bytes:
    """The metrics in the Prometheus text format: every worker's when several share
    the multiprocess directory (blocking file reads: call it off the event loop),
    else this process's (with the process and garbage-collector metrics)."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    forget_dead_workers()
    for attempt in range(3):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        try:
            return generate_latest(registry)
        except FileNotFoundError:  # a dead worker's file removed while it was being read
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
