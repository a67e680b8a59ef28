"""Fixtures for the framework integrations: the service API connected in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent_runtime.services import database
from tests.fixtures.backends import Backend, truncate

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
