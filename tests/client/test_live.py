"""The clients against a real uvicorn server: the event stream resuming after a
disconnect, and the sync client."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from agent_runtime.client import AgentRuntimeClient, AsyncAgentRuntimeClient
from agent_runtime.errors import ConflictError, NotFoundError, PreconditionFailedError

CUT_AFTER_BYTES = 1000  # a few events in: mid-event, most likely


class _CutStream(httpx.AsyncByteStream):
    """The body of one response, broken off after CUT_AFTER_BYTES as a dropped
    connection would."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self.inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self.inner:
            if sent + len(chunk) >= CUT_AFTER_BYTES:
                yield chunk[: CUT_AFTER_BYTES - sent]
                raise httpx.ReadError("connection lost")
            sent += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CutFirstStream(httpx.AsyncBaseTransport):
    """Real HTTP; the first `GET /events` answer is cut short."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.streams: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/events":
            self.streams.append(request)
            if len(self.streams) == 1:
                assert isinstance(response.stream, httpx.AsyncByteStream)
                response.stream = _CutStream(response.stream)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_the_event_stream_resumes_after_a_disconnect_without_loss_or_repeat(server):
    session = f"s-{uuid.uuid4().hex}"
    transport = CutFirstStream()
    async with AsyncAgentRuntimeClient(server.url, transport=transport) as client:
        for i in range(10):
            await client.create_approval(session, f"{session}-{i}", "tool", {"i": i})
        received = []
        stream = client.events(
            types=["approval.created"], session_id=session, after=0, reconnect_delay=0.05
        )
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                received.append(event)
                if len(received) == 12:
                    break
                if len(received) == 10:  # live events, after the reconnect
                    for i in (10, 11):
                        await client.create_approval(session, f"{session}-{i}", "tool", {})

    assert [e.data["call_id"] for e in received] == [f"{session}-{i}" for i in range(12)]
    ids = [e.id for e in received]
    assert ids == sorted(set(ids))
    assert {e.type for e in received} == {"approval.created"}
    assert len(transport.streams) >= 2, "the stream was never cut"
    resumed_at = int(transport.streams[1].headers["last-event-id"])
    assert resumed_at in ids[:9]  # some events came before the cut, the rest after it


def test_the_sync_client(server):
    session = f"s-{uuid.uuid4().hex}"
    with AgentRuntimeClient(server.url) as client:
        version = client.save_session(session, [{"role": "user", "content": "hi"}])
        client.append_messages(session, [{"role": "user", "content": "again"}])
        with pytest.raises(PreconditionFailedError):
            client.save_session(session, [], if_version=version)
        assert [m.content for m in client.iter_messages(session, page_size=1)] == ["hi", "again"]
        assert client.update_session(session, title="T").title == "T"

        client.create_approval(session, f"{session}-1", "tool")
        client.decide(f"{session}-1", "approved")
        with pytest.raises(ConflictError):
            client.decide(f"{session}-1", "rejected")
        claim = client.claim(f"{session}-1")
        client.report_result(f"{session}-1", claim.claim_token, "failed", {"why": "x"})

        with contextlib.closing(client.events(session_id=session, after=0)) as events:
            types = [next(events).type for _ in range(6)]
        assert types == [
            "session.saved",
            "session.saved",
            "approval.created",
            "approval.decided",
            "approval.claimed",
            "approval.failed",
        ]
        client.delete_session(session, hard=True)
        with pytest.raises(NotFoundError):
            client.load_session(session)
