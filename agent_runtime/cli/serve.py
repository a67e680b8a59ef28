"""`agent-runtime serve`: uvicorn with the service's settings."""

from __future__ import annotations

import logging.config
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import click

from agent_runtime.cli._common import fail, run, settings_and_database
from agent_runtime.config import Settings
from agent_runtime.db.migrations import ensure_schema
from agent_runtime.observability.logs import logging_config
from agent_runtime.observability.metrics import MULTIPROC_DIR_ENV

logger = logging.getLogger("agent_runtime")


def open_files(settings: Settings) -> None:
    """Raise the soft limit of open files to the hard one (the workers inherit it);
    say if it still cannot hold `max_connections` connections per worker."""
    from agent_runtime.cli.connections import OWN_DESCRIPTORS, raise_open_files_limit

    before, after = raise_open_files_limit()
    if after != before:
        logger.info("open files limit raised from %d to %d", before, after)
    if 0 <= after < settings.max_connections + OWN_DESCRIPTORS:  # -1: unlimited
        logger.warning(
            "open files limit %d (the hard limit) is too low for "
            "AGENT_RUNTIME__MAX_CONNECTIONS=%d: beyond %d connections a worker closes new "
            "ones at once; raise the hard limit (LimitNOFILE= in a systemd unit, "
            "ulimit -Hn) or lower the setting",
            after,
            settings.max_connections,
            max(after - OWN_DESCRIPTORS, 1),
        )


@contextmanager
def metrics_directory(workers: int) -> Iterator[str | None]:
    """Where the workers keep their metrics so that any of them reports all:
    `PROMETHEUS_MULTIPROC_DIR` if set (it must be an empty directory), else, with
    several workers, a fresh private directory, removed at exit. One worker in
    this process needs none (its metrics stay in memory)."""
    given = os.environ.get(MULTIPROC_DIR_ENV)
    if given:
        if not os.path.isdir(given):
            fail(f"{MULTIPROC_DIR_ENV}={given} is not a directory")
        if any(name.endswith(".db") for name in os.listdir(given)):
            logger.warning(
                "%s=%s holds metrics of an earlier run: they are counted too (empty it "
                "before starting)",
                MULTIPROC_DIR_ENV,
                given,
            )
        yield given
        return
    if workers == 1:
        yield None
        return
    # Set before the workers start (they import prometheus_client afresh), never in
    # this process's own registry, which was created at import without it.
    path = tempfile.mkdtemp(prefix="agent-runtime-metrics-")  # mode 0700
    os.environ[MULTIPROC_DIR_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_DIR_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


@click.command()
@click.option("--host", help="Address to bind (default: AGENT_RUNTIME__HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: AGENT_RUNTIME__PORT, 8000).")
@click.option("--workers", type=click.IntRange(1), help="Worker processes (default: 1).")
@click.option("--log-level", help="Log level (default: AGENT_RUNTIME__LOG_LEVEL, info).")
def serve(
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    log_level: str | None = None,
) -> None:
    """Serve the REST API with uvicorn.

    Checks the configuration and the schema first (applying migrations to SQLite
    when AGENT_RUNTIME__AUTO_MIGRATE allows), and refuses to listen beyond
    loopback without an API key. With several workers, GET /metrics reports all
    of them (a private PROMETHEUS_MULTIPROC_DIR, removed at exit).

    Connections: the soft limit of open files is raised to the hard one; a
    connection that sends no whole request head in AGENT_RUNTIME__HEADER_TIMEOUT_SECONDS
    is closed; beyond AGENT_RUNTIME__MAX_CONNECTIONS per worker, requests are answered
    503. Forwarded headers are the app's (AGENT_RUNTIME__FORWARDED_ALLOW_IPS), not
    uvicorn's.
    """
    settings, database = settings_and_database()
    settings = settings.model_copy(
        update={
            k: v
            for k, v in {
                "host": host,
                "port": port,
                "workers": workers,
                "log_level": log_level,
            }.items()
            if v is not None
        }
    )
    try:
        log_config = logging_config(settings.log_format, settings.log_level)
    except ValueError as exc:
        fail(str(exc))
    logging.config.dictConfig(log_config)
    refusal = settings.unauthenticated_remote_refusal()
    if refusal:
        fail(refusal)
    run(ensure_schema(database, auto_migrate=settings.auto_migrate), database)
    open_files(settings)
    import uvicorn

    from agent_runtime.cli.connections import HeaderTimeoutProtocol, limit_overload_logs

    limit_overload_logs()  # this process's; each worker's when it imports the protocol

    with metrics_directory(settings.workers):
        uvicorn.run(
            "agent_runtime.main:app",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            log_config=log_config,
            timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
            http=HeaderTimeoutProtocol,
            # The app reads X-Forwarded-For/-Proto itself, from the proxies of
            # AGENT_RUNTIME__FORWARDED_ALLOW_IPS only (uvicorn's default trusts 127.0.0.1).
            proxy_headers=False,
            # uvicorn answers 503 once the open connections, the request's own
            # included, reach the limit: + 1 serves max_connections of them.
            limit_concurrency=settings.max_connections + 1,
        )
