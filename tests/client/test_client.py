"""The async client over ASGI on the app, on every backend: each operation, the
error mapping, and the retry policy (a transport that fails the first N sends)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from agent_runtime.client import AsyncAgentRuntimeClient, RetryPolicy
from agent_runtime.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    UnauthorizedError,
    UnavailableError,
)
from tests.fixtures.remote import app_client

T0 = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def api(backend) -> AsyncIterator[AsyncAgentRuntimeClient]:
    async with app_client(backend) as (client, _, _):
        yield client


class Flaky:
    """A transport in front of the app that answers the first `failures` sends itself:
    503 with `Retry-After`, or a connection error."""

    def __init__(self, app: Any, failures: int, *, connect_error: bool = False) -> None:
        self.app = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.failures = failures
        self.connect_error = connect_error
        self.sent: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path}")
        if len(self.sent) <= self.failures:
            if self.connect_error:
                raise httpx.ConnectError("refused", request=request)
            body = {"error": {"code": "unavailable", "message": "database unavailable"}}
            return httpx.Response(503, json=body, headers={"Retry-After": "0"})
        await request.aread()
        return await self.app.handle_async_request(request)


@pytest.fixture
async def flaky(backend) -> AsyncIterator[Any]:
    """`flaky(failures, ...)`: a client whose first `failures` sends fail, and the transport."""
    async with app_client(backend) as (_, _, app):
        clients: list[AsyncAgentRuntimeClient] = []

        def make(failures: int, **kwargs: Any) -> tuple[AsyncAgentRuntimeClient, Flaky]:
            transport = Flaky(app, failures, connect_error=kwargs.pop("connect_error", False))
            client = AsyncAgentRuntimeClient(
                "http://test", transport=httpx.MockTransport(transport), backoff=0, **kwargs
            )
            clients.append(client)
            return client, transport

        yield make
        for client in clients:
            await client.aclose()


# --- sessions ---------------------------------------------------------------------------


async def test_save_load_append_and_versions(api):
    version = await api.save_session("s1", HI, last_activity=T0)
    loaded = await api.load_session("s1")

    assert loaded.version == version
    assert [m.model_dump(exclude_unset=True) for m in loaded.messages] == HI
    assert loaded.last_activity == T0 and loaded.last_activity.tzinfo is not None

    appended = await api.append_messages(
        "s1", [{"role": "assistant", "content": "hello"}], if_version=version
    )
    assert appended == version + 1
    with pytest.raises(PreconditionFailedError):
        await api.save_session("s1", HI, if_version=version)
    assert [m.content for m in (await api.load_session("s1")).messages] == ["hi", "hello"]


async def test_last_activity_is_recorded_by_save_and_append(api):
    later = T0 + timedelta(hours=1)
    await api.save_session("s1", HI, last_activity=T0)
    await api.append_messages("s1", HI, last_activity=later)

    stats = await api.session_stats("s1")

    assert stats.last_activity == later
    assert stats.message_count == 2


async def test_pages_of_sessions_and_messages(api):
    for i in range(5):
        await api.save_session(f"s{i}", HI, last_activity=T0 + timedelta(minutes=i))
    messages = [{"role": "user", "content": str(i)} for i in range(7)]
    await api.save_session("s4", messages, last_activity=T0 + timedelta(hours=1))

    first = await api.list_sessions(limit=2)
    ids = [s.session_id async for s in api.iter_sessions(page_size=2)]
    contents = [m.content async for m in api.iter_messages("s4", page_size=3)]
    latest = await api.list_messages("s4", limit=2, latest=True)

    assert [s.session_id for s in first.items] == ["s4", "s3"] and first.next_cursor
    assert ids == ["s4", "s3", "s2", "s1", "s0"]
    assert contents == [str(i) for i in range(7)]
    assert [m.position for m in latest.items] == [5, 6] and latest.prev_cursor
    assert latest.version == (await api.load_session("s4")).version  # for if_version
    assert first.version is None  # a page of sessions is of no one session


async def test_update_and_delete_session(api):
    version = await api.save_session("s1", HI)

    summary = await api.update_session("s1", title="Weather", if_version=version)
    assert (summary.title, summary.version) == ("Weather", version + 1)
    with pytest.raises(PreconditionFailedError):
        await api.update_session("s1", description="x", if_version=version)

    await api.delete_session("s1")
    with pytest.raises(NotFoundError, match="s1"):
        await api.load_session("s1")
    assert [s.session_id async for s in api.iter_sessions(include_deleted=True)] == ["s1"]
    await api.delete_session("s1", hard=True)
    with pytest.raises(NotFoundError):
        await api.delete_session("s1", hard=True)


async def test_ids_with_reserved_characters_stay_one_path_segment(api):
    # (a "/" is decoded by the server before routing: such ids cannot be reached over REST)
    await api.save_session("a b?c#d%", HI)

    assert (await api.load_session("a b?c#d%")).session_id == "a b?c#d%"


# --- agent contexts -----------------------------------------------------------------


async def test_agent_contexts(api):
    await api.save_session("s1", HI)
    history = [{"from": None, "to": "triage", "timestamp": T0}, {"from": "triage", "to": "billing"}]

    saved = await api.put_agent_context(
        "s1", "billing", agent_history=history, metadata={"t": 1}, switch_count=2
    )
    assert saved.current_agent == "billing" and saved.metadata == {"t": 1}
    assert (await api.get_agent_context("s1")).switch_count == 2
    assert await api.list_agent_contexts() == ["s1"]
    switches = await api.agent_switches("s1", limit=1)
    assert [s.to_agent for s in switches] == ["billing"]

    await api.delete_agent_context("s1")
    with pytest.raises(NotFoundError):
        await api.get_agent_context("s1")
    with pytest.raises(NotFoundError):
        await api.put_agent_context("nope", "billing")


# --- approvals ------------------------------------------------------------------------


async def test_the_approval_cycle(api):
    created = await api.create_approval("s1", "call_1", "pay", {"amount": 120})
    again = await api.create_approval("s1", "call_1", "pay", {"amount": 120})
    assert created == again and created.status == "pending"
    with pytest.raises(ConflictError):
        await api.create_approval("s1", "call_1", "pay", {"amount": 999})

    assert [a.call_id async for a in api.iter_approvals(status="pending")] == ["call_1"]
    assert (await api.wait_for_decision("call_1", timeout=0.1)).status == "pending"

    decided = await api.decide(
        "call_1", "approved", decided_by="alice", message="max 100", arguments={"amount": 100}
    )
    assert decided.edited_arguments == {"amount": 100}
    assert (
        await api.decide(
            "call_1", "approved", decided_by="alice", message="max 100", arguments={"amount": 100}
        )
        == decided
    )
    with pytest.raises(ConflictError) as refused:
        await api.decide("call_1", "rejected")
    assert refused.value.current is not None and refused.value.current["status"] == "approved"
    assert (await api.wait_for_decision("call_1")).status == "approved"

    claim = await api.claim("call_1", claimed_by="worker-3")
    assert claim.status == "claimed" and claim.claim_token
    with pytest.raises(ConflictError):
        await api.claim("call_1")
    done = await api.report_result("call_1", claim.claim_token, "executed", {"id": "p_91"})
    assert (done.status, done.result) == ("executed", {"id": "p_91"})

    events = await api.approval_events("call_1")
    assert [e.type for e in events] == [
        "approval.created",
        "approval.decided",
        "approval.claimed",
        "approval.executed",
    ]
    assert (await api.get_approval("call_1")).status == "executed"


async def test_inbox_pages_and_delete(api):
    for i in range(3):
        await api.create_approval("s1", f"call_{i}", "tool")
    await api.create_approval("s2", "call_x", "tool")
    assert [a.call_id for a in (await api.session_approvals("s2")).items] == ["call_x"]
    page = await api.list_approvals(session_id="s1", limit=2)
    assert [a.call_id for a in page.items] == ["call_0", "call_1"] and page.next_cursor

    await api.delete_approval("call_0")
    with pytest.raises(NotFoundError):
        await api.get_approval("call_0")
    assert [a.call_id async for a in api.iter_approvals(session_id="s1", page_size=1)] == [
        "call_1",
        "call_2",
    ]


async def test_cleanup(api):
    await api.save_session("s1", HI, last_activity=T0)

    report = await api.cleanup(idle_hours=1, purge_deleted_after_days=None, dry_run=True)

    assert (report.soft_deleted, report.dry_run) == (1, True)


# --- errors ---------------------------------------------------------------------------


async def test_invalid_input_carries_the_details(api):
    with pytest.raises(InvalidInputError) as refused:
        await api.save_session("s1", [{"role": "robot", "content": "x"}])

    assert refused.value.details[0]["loc"] == ["body", 0, "role"]


async def test_wrong_or_missing_api_key_is_unauthorized(backend):
    async with app_client(backend, api_key="secret") as (client, _, app):
        with pytest.raises(UnauthorizedError):
            await client.load_session("s1")
        transport = httpx.ASGITransport(app=app)
        async with AsyncAgentRuntimeClient("http://test", "secret", transport=transport) as ok:
            await ok.save_session("s1", HI)
            assert (await ok.load_session("s1")).session_id == "s1"


# --- retries --------------------------------------------------------------------------


async def test_idempotent_calls_are_retried_on_503(flaky):
    client, transport = flaky(2)

    version = await client.save_session("s1", HI)

    assert version == 1
    assert transport.sent == ["POST /sessions/s1"] * 3


async def test_retries_are_bounded(flaky):
    client, transport = flaky(5, max_attempts=3)

    with pytest.raises(UnavailableError) as refused:
        await client.load_session("s1")

    assert refused.value.retry_after == 0
    assert len(transport.sent) == 3


async def test_connection_errors_are_retried_for_idempotent_calls(flaky):
    client, transport = flaky(1, connect_error=True)

    await client.create_approval("s1", "call_1", "tool")

    assert transport.sent == ["POST /approvals"] * 2


@pytest.mark.parametrize("connect_error", [False, True])
async def test_non_idempotent_calls_are_never_retried(flaky, connect_error):
    client, transport = flaky(1, connect_error=connect_error)

    with pytest.raises(UnavailableError if not connect_error else httpx.ConnectError):
        await client.append_messages("s1", HI)
    with pytest.raises(NotFoundError):  # the second send reached the app: nothing approved
        await client.claim("call_1")

    assert transport.sent == ["POST /sessions/s1/messages", "POST /approvals/call_1/claim"]


async def test_an_append_with_if_version_is_retried(flaky):
    client, transport = flaky(0)
    version = await client.save_session("s1", HI)
    transport.sent, transport.failures = [], 2

    assert await client.append_messages("s1", HI, if_version=version) == version + 1
    assert transport.sent == ["POST /sessions/s1/messages"] * 3


def test_the_backoff_honours_retry_after_within_bounds():
    policy = RetryPolicy(max_attempts=5, backoff=0.5, max_backoff=3)
    request = httpx.Request("GET", "http://test/")

    def answer(retry_after: str | None) -> httpx.Response:
        headers = {"Retry-After": retry_after} if retry_after else {}
        return httpx.Response(503, headers=headers, request=request)

    assert [policy.delay(n, None) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3]
    assert policy.delay(1, answer("2")) == 2.0
    assert policy.delay(1, answer("60")) == 3
    assert policy.delay(3, answer("nonsense")) == 2.0


async def test_an_invalid_last_activity_is_refused(api):
    response = await api.http.post("/sessions/s1?last_activity=yesterday", json=HI)

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["query", "last_activity"]


async def test_the_event_stream_raises_what_the_service_refuses(api):
    with pytest.raises(InvalidInputError):
        async for _ in api.events(types=["no.such.type"]):
            pass
