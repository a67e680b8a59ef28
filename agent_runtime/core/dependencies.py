"""FastAPI dependencies: `DBSession` (one transaction per request) and `DBService`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import ClientDisconnect
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.config import Settings
from agent_runtime.db.sqlite_engine import write_transaction
from agent_runtime.errors import InvalidInputError
from agent_runtime.events.hub import EventHub
from agent_runtime.service_api import DatabaseService
from agent_runtime.services._common import events_committed, request_transaction

__all__ = [
    "AppSettings",
    "DBConnection",
    "DBService",
    "DBSession",
    "Hub",
    "get_connection",
    "get_db",
    "get_db_service",
    "get_hub",
    "get_settings",
    "request_db",
]


@asynccontextmanager
async def request_db(request: Request) -> AsyncIterator[BaseDBAsyncClient]:
    """The request's one transaction: committed if the block ends, rolled back if it
    raises (`get_db`, and the sessions routes' plain handlers).

    On SQLite it begins with its first statement, BEGIN IMMEDIATE in the same trip to
    the driver's thread (`write_transaction`): the transaction costs no trip of its
    own, and none at all for a request that sends no statement. On PostgreSQL it is
    Tortoise's transaction, begun at once."""
    # The body first, outside the transaction. When a large body makes uvicorn pause
    # and resume reading, the resumed reader runs in a copy of the context that read
    # the body, and later requests on the connection start from that copy: read
    # inside the transaction, they would find this request's (finished) transaction
    # as their connection.
    try:
        await request.body()
    except ClientDisconnect:  # nobody to answer; what FastAPI's own body read answers
        raise InvalidInputError("the client disconnected before sending the whole body") from None
    connection = Tortoise.get_connection(request.app.state.database.dialect)
    async with write_transaction(connection) as transaction:
        with request_transaction(transaction):
            yield transaction
    events_committed()


async def get_db(request: Request) -> AsyncIterator[BaseDBAsyncClient]:
    """One transaction per request: committed if the endpoint returns, rolled
    back if it raises."""
    async with request_db(request) as transaction:
        yield transaction


# Async, though they do not await: FastAPI runs a plain-function dependency in a
# worker thread, a hop on every request.
async def get_connection(request: Request) -> BaseDBAsyncClient:
    """The connection itself, outside any transaction (health checks)."""
    return Tortoise.get_connection(request.app.state.database.dialect)


async def get_db_service() -> DatabaseService:
    return _SERVICE


async def get_hub(request: Request) -> EventHub:
    """This process's event hub, started by the lifespan."""
    hub: EventHub = request.app.state.hub
    return hub


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


_SERVICE = DatabaseService()

# scope="function": the commit runs when the endpoint returns, *before* the
# response is sent, so a failed commit can never be answered with a 2xx. (The
# default "request" scope commits after the response has gone out.)
DBSession = Annotated[BaseDBAsyncClient, Depends(get_db, scope="function")]
DBService = Annotated[DatabaseService, Depends(get_db_service)]
DBConnection = Annotated[BaseDBAsyncClient, Depends(get_connection)]
Hub = Annotated[EventHub, Depends(get_hub)]
AppSettings = Annotated[Settings, Depends(get_settings)]
