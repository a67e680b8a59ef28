"""Fixtures for the framework integrations: the service API connected in-process."""

from __future__ import annotations

import asyncio
import functools
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.services import database
from tests.fixtures.backends import Backend, truncate
from tests.fixtures.remote import app_client

pytest.importorskip("agents", reason="the openai-agents extra is not installed")

from agents import Agent, set_tracing_disabled
from agents.testing import ScriptedModel

set_tracing_disabled(True)  # no trace export (and no network) from the tests


@asynccontextmanager
async def in_process_store(backend: Backend) -> AsyncIterator[BaseDBAsyncClient]:
    """`init_database(backend.url)` on an emptied, migrated database (the message cache
    emptied too), its connection yielded; `close_db` after."""
    await database.init_database(backend.url)
    try:
        await truncate(database.get_connection())
        database.message_cache.clear()
        yield database.get_connection()
    finally:
        await database.close_db()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Backend]:
    """The service API in-process on `backend` (`in_process_store`)."""
    async with in_process_store(backend):
        yield backend


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
    async with in_process_store(backend) as connection:
        yield Sessions(connection, None)


def user(text: str) -> dict:
    """A user message item, as the SDK's tests write them."""
    return {"role": "user", "content": text}


def scripted_agent() -> tuple[Agent, ScriptedModel]:
    """An agent on the SDK's `ScriptedModel` (its canned answers: `model.enqueue`)."""
    model = ScriptedModel()
    return Agent(name="test", model=model), model


async def until(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    """Wait until `condition()` holds (checked every 20 ms); after `seconds` without it,
    fail the test, naming `what` it waited for."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


T = TypeVar("T")
# What the loop rule's error says (agent_runtime.integrations.openai_agents.LOOP_RULE).
LOOP_RULE_MATCH = "in-process is bound to the event loop that opened the database connection"
# "At once": no wait for a lock, a pool or a timeout (a hang would last far longer).
AT_ONCE_SECONDS = 3.0


class LoopRuleHeld(Exception):
    """In-process, the loop rule refused a call from another event loop at once, as it
    should: the test ends there (`held_or_passed`)."""


@dataclass(frozen=True)
class AnyLoop:
    """Makes `AgentRuntimeSession`s for tests that use them from several event loops
    (threads each running their own): in-process (`client` None), where the loop rule
    refuses every loop but the one owning the connection; or over REST to a real
    server (`url`), through one client shared by every loop."""

    client: AsyncAgentRuntimeClient | None = None
    url: str | None = None

    @property
    def in_process(self) -> bool:
        return self.client is None

    def __call__(self, session_id: str, **kwargs: Any) -> Any:
        from agent_runtime.integrations.openai_agents import AgentRuntimeSession

        return AgentRuntimeSession(session_id, client=self.client, **kwargs)

    def own_client(self) -> AsyncAgentRuntimeClient | None:
        """A new client of the same server (None in-process), as a session made from a
        URL has (the SDK's `from_url`)."""
        return None if self.url is None else AsyncAgentRuntimeClient(self.url)

    async def elsewhere(self, work: Coroutine[Any, Any, T]) -> T:
        """Await `work`, which runs on other event loops (threads). Over REST: its result.
        In-process: it must raise the loop rule's `RuntimeError` at once, leaving this
        loop's connection as it was; then `LoopRuleHeld`."""
        if not self.in_process:
            return await work
        before = database.get_connection()
        started = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                await asyncio.wait_for(work, 30)
            except RuntimeError as exc:
                error: BaseException = exc
            else:
                raise AssertionError("in-process, the call from another loop was not refused")
        self.refused([error], started)
        assert database.get_connection() is before, "Tortoise's connection was replaced"
        assert not [w for w in caught if "event loop" in str(w.message)], caught
        raise LoopRuleHeld

    def outcome(self, errors: list[BaseException | None], started: float) -> None:
        """What calls made on other event loops ended with (None: no error). Over REST,
        none failed. In-process, each was refused by the loop rule at once: then
        `LoopRuleHeld`."""
        if not self.in_process:
            assert errors == [None] * len(errors), errors
            return
        self.refused(errors, started)
        raise LoopRuleHeld

    @staticmethod
    def refused(errors: list[BaseException | None], started: float) -> None:
        assert errors, "no call was made"
        for error in errors:
            assert isinstance(error, RuntimeError), repr(error)
            assert LOOP_RULE_MATCH in str(error), str(error)
        assert time.monotonic() - started < AT_ONCE_SECONDS


def held_or_passed(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """A test run in both modes: over REST it must pass; in-process it must end with the
    loop rule refusing the first call from another loop (`LoopRuleHeld`)."""

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        sessions: AnyLoop = kwargs["sessions"]
        try:
            await test(*args, **kwargs)
        except LoopRuleHeld:
            assert sessions.in_process
            return
        assert not sessions.in_process, "in-process, no call was refused by the loop rule"

    return run


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
