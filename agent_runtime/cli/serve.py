"""`agent-runtime serve`: uvicorn with the service's settings."""

from __future__ import annotations

import logging

import click

from agent_runtime.cli._common import fail, run, settings_and_database
from agent_runtime.db.migrations import ensure_schema


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
    loopback without an API key.
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
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s"
    )
    refusal = settings.unauthenticated_remote_refusal()
    if refusal:
        fail(refusal)
    run(ensure_schema(database, auto_migrate=settings.auto_migrate), database)
    import uvicorn

    uvicorn.run(
        "agent_runtime.main:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )
