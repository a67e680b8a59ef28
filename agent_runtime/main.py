"""The FastAPI application: `app`, built by `create_app()`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from tortoise.contrib.fastapi import RegisterTortoise

from agent_runtime import __version__
from agent_runtime.api.errors import install_error_handlers
from agent_runtime.api.routes import sessions
from agent_runtime.config import Settings, get_settings
from agent_runtime.db.config import database_url, tortoise_config
from agent_runtime.db.migrations import ensure_schema
from agent_runtime.errors import SchemaOutOfDateError

__all__ = ["app", "create_app"]

logger = logging.getLogger("agent_runtime")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    db = app.state.database
    try:
        await ensure_schema(db, auto_migrate=settings.auto_migrate)
    except SchemaOutOfDateError as exc:
        logger.error("%s", exc)
        raise
    # RegisterTortoise makes the connections visible to request tasks (global
    # fallback) and closes them at shutdown.
    async with RegisterTortoise(app, config=tortoise_config(db)):
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. A bad `AGENT_RUNTIME__DB_URL` raises `ConfigurationError` here."""
    settings = settings or get_settings()
    app = FastAPI(title="agent-runtime", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.database = database_url(settings)
    install_error_handlers(app)
    app.include_router(sessions.router)
    return app


app = create_app()
