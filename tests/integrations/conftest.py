"""Fixtures for the framework integrations: the service API connected in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.services import database
from tests.fixtures.backends import Backend, truncate
from tests.fixtures.remote import app_client

pytest.importorskip("agents", reason="the openai-agents extra is not installed")

from agents import set_tracing_disabled

set_tracing_disabled(True)  # no trace export (and no network) from the tests


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Backend]:
    """`init_database(backend.url)` on an emptied, migrated database; `close_db` after."""
    await database.init_database(backend.url)
    try:
        await truncate(database.get_connection())
        database.message_cache.clear()
        yield backend
    finally:
        await database.close_db()


@dataclass(frozen=True)
class Sessions:
    """Makes `AgentRuntimeSession`s: in-process (`client` None), or over REST with
    `client`; `db` is the connection to the store, for the checks a test makes on it."""

    db: BaseDBAsyncClient
    client: AsyncAgentRuntimeClient | None

    def __call__(self, session_id: str, **kwargs: Any) -> Any:
        from agent_runtime.integrations.openai_agents import AgentRuntimeSession

        return AgentRuntimeSession(session_id, client=self.client, **kwargs)


@pytest.fixture(params=["local", "remote"])
async def sessions(request: pytest.FixtureRequest, backend: Backend) -> AsyncIterator[Sessions]:
    """A session factory on an emptied, migrated database: in-process (as `store`), or
    remote over `httpx.ASGITransport` to the app on the same backend (the app's
    lifespan connects Tortoise). A test taking `sessions` does not take `store`."""
    if request.param == "remote":
        async with app_client(backend) as (client, connection, _):
            database.message_cache.clear()
            yield Sessions(connection, client)
        return
    await database.init_database(backend.url)
    try:
        await truncate(database.get_connection())
        database.message_cache.clear()
        yield Sessions(database.get_connection(), None)
    finally:
        await database.close_db()


def fake_model(*turns: list[Any]) -> Any:
    """A `Model` answering each call with the next canned list of output items."""
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage

    class FakeModel(Model):
        def __init__(self) -> None:
            self.turns = list(turns)
            self.inputs: list[Any] = []

        async def get_response(self, system_instructions, input, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.inputs.append(input)
            output = self.turns.pop(0)
            return ModelResponse(output=output, usage=Usage(), response_id=None)

        def stream_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    return FakeModel()


def text_message(text: str, id: str = "msg_1") -> Any:
    from openai.types.responses import ResponseOutputMessage, ResponseOutputText

    return ResponseOutputMessage(
        id=id,
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def function_call(name: str, arguments: str, call_id: str) -> Any:
    from openai.types.responses import ResponseFunctionToolCall

    return ResponseFunctionToolCall(
        id=f"fc_{call_id}",
        type="function_call",
        name=name,
        arguments=arguments,
        call_id=call_id,
        status="completed",
    )
