"""The FastAPI application: `app`, built by `create_app()`."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp
from tortoise import Tortoise
from tortoise.contrib.fastapi import RegisterTortoise

from agent_runtime import __version__
from agent_runtime.api.errors import install_error_handlers
from agent_runtime.api.message_body import add_message_schemas
from agent_runtime.api.middleware import (
    ApiKeyMiddleware,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
)
from agent_runtime.api.proxy import install_proxy_headers
from agent_runtime.api.routes import (
    agent_contexts,
    approval_runs,
    approvals,
    checkpoints,
    events,
    health,
    maintenance,
    metrics,
    sessions,
)
from agent_runtime.config import Settings, get_settings, settings_or_exit, unknown_variables
from agent_runtime.console import PREFIX as CONSOLE_PREFIX
from agent_runtime.console import install_console
from agent_runtime.core.auth import Keys
from agent_runtime.core.metrics_collect import running_metrics
from agent_runtime.core.retention_task import periodic_retention
from agent_runtime.db.config import database_url, direct_database_url, tortoise_config
from agent_runtime.db.errors import is_database_unavailable
from agent_runtime.db.migrations import ensure_schema
from agent_runtime.errors import MigrationFileError, SchemaOutOfDateError
from agent_runtime.events.hub import running_hub
from agent_runtime.observability import logs
from agent_runtime.services import api_keys as api_key_service
from agent_runtime.services.message_cache import message_cache

__all__ = ["app", "create_app"]

logger = logging.getLogger("agent_runtime")

DESCRIPTION = """Storage for an AI agent runtime: sessions and their messages, agent
contexts, and tool calls waiting for human approval.

Errors always have the body `{"error": {"code": "...", "message": "..."}}`.
Sessions carry a version, served as `ETag`; send it back as `If-Match` to make a
write conditional (412 if the session changed). Once a key exists
(`AGENT_RUNTIME__API_KEY`, or one made with `agent-runtime key add`), every route
except `/health/*` needs `Authorization: Bearer <key>`, and the key's role (agent,
reviewer, admin, metrics) says what it may do: 403 otherwise. Every answer
carries an `X-Request-ID` (the caller's, when sent), also written in the log lines
of that request."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    db = app.state.database
    logs.install(settings.log_format, settings.log_level)
    for name in unknown_variables():
        logger.warning("%s is not a setting: ignored", name)
    try:
        await ensure_schema(db, auto_migrate=settings.auto_migrate)
    except (SchemaOutOfDateError, MigrationFileError) as exc:
        logger.error("%s", exc)
        raise
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        # A database that is down now may be up in a moment: serve, and let the
        # readiness probe (503) and each request (503) say so until it is.
        logger.error(
            "cannot check the schema: database unreachable at %s (%s: %s); serving, "
            "/health/ready answers 503 until it is reachable and current",
            db.display(),
            type(exc).__name__,
            exc,
        )
    # RegisterTortoise makes the connections visible to request tasks (global
    # fallback) and closes them at shutdown.
    async with (
        RegisterTortoise(app, config=tortoise_config(db)),
        running_hub(
            db,
            poll_seconds=settings.event_poll_seconds,
            listen_on=direct_database_url(settings, db),
            stream_buffer=settings.sse_buffer_events,
            stream_buffer_bytes=settings.sse_buffer_bytes,
        ) as hub,
        periodic_retention(settings, db.dialect),
        running_metrics(db.dialect),
    ):
        app.state.hub = hub
        logger.info("database %s: connected", db.display())
        await _warn_if_unauthenticated(settings, db.dialect)
        # What start-up built (modules, the app, pydantic's validators: some 10^5
        # objects) lives as long as the process: keep it out of every full
        # collection, so the collector's pauses scale with the live data only.
        gc.collect()
        gc.freeze()
        yield
    logger.info("database %s: connections closed", db.display())


async def _warn_if_unauthenticated(settings: Settings, dialect: str) -> None:
    if settings.api_key is not None:
        return
    try:
        keys = await api_key_service.any_api_keys(Tortoise.get_connection(dialect))
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        return  # the requests will say so (503), and the readiness probe
    if not keys:
        logger.warning(
            "authentication is off (no AGENT_RUNTIME__API_KEY, no key made with "
            "`agent-runtime key add`): serve on a loopback address only"
        )


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Around everything, the error handling that answers 500 included: that
        # answer carries the request id too, and its duration is recorded.
        return RequestContextMiddleware(super().build_middleware_stack())


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. A bad `AGENT_RUNTIME__DB_URL` raises `ConfigurationError` here."""
    settings = settings or get_settings()
    app = _App(
        title="agent-runtime",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database_url(settings)
    message_cache.configure(settings)
    install_error_handlers(app)
    add_message_schemas(app)
    for module in (
        sessions,
        agent_contexts,
        approvals,
        approval_runs,
        checkpoints,
        events,
        maintenance,
        health,
    ):
        app.include_router(module.router)
    app.add_route(metrics.PATH, metrics.metrics, methods=["GET"], include_in_schema=False)
    install_console(app)
    # Not FastAPI's `max_body_size`: its 413 is plain text, ours has the JSON error body.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Client address and scheme from trusted proxies' X-Forwarded-* (default: none).
    install_proxy_headers(app, settings)
    # Added last, so it runs first: authentication before anything else.
    app.add_middleware(
        ApiKeyMiddleware,
        keys=Keys(settings),
        dialect=app.state.database.dialect,
        public_paths=health.PUBLIC_PATHS,
        own_auth_prefix=CONSOLE_PREFIX,
        metrics_path=metrics.PATH,
    )
    return app


app = create_app(settings_or_exit())
