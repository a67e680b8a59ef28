"""The console's live stream (`GET /console/events`) does not outlive its login, on
every backend: after a logout, a new password or the reviewer's removal, an open
stream ends and delivers nothing more, not even an approval created at once after.

The app is driven over ASGI directly, reading the answer as it is sent (httpx's
ASGI transport would wait for the end of the stream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI

from agent_runtime.console.routes.inbox import APPROVAL_EVENTS, _logged_in
from agent_runtime.events.stream import event_stream, first_page
from agent_runtime.services.console_sessions import end_console_session, start_console_session
from agent_runtime.services.reviewers import remove_reviewer, set_reviewer_password
from tests.console.http import ADDRESS, REVIEWER, SESSION_COOKIE, Agent, Console, open_console

HEARTBEAT = 0.2  # seconds: settings.sse_heartbeat_seconds of the app under test
WAIT = 10.0  # seconds a stream may take to show something or end before the test fails


@pytest.fixture
async def web(backend) -> AsyncIterator[Console]:
    async with open_console(backend, sse_heartbeat_seconds=HEARTBEAT) as console:
        yield console


@pytest.fixture
async def carol(web: Console) -> Agent:
    return await web.logged_in(REVIEWER)


class Stream:
    """One `GET /console/events` with a session cookie, as a browser's EventSource
    sends it; what the app has sent so far, and whether it has ended."""

    def __init__(self, app: FastAPI, cookie: str | None) -> None:
        self.app, self.cookie = app, cookie
        self.status: int | None = None
        self.body = b""
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self._changed = asyncio.Event()
        self._client_gone = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return self.body.decode()

    async def open(self) -> Stream:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.started.wait(), WAIT)
        assert self.status == 200, self.text
        return self

    async def _run(self) -> None:
        headers = [(b"host", b"t"), (b"accept", b"text/event-stream")]
        if self.cookie:
            headers.append((b"cookie", f"{SESSION_COOKIE}={self.cookie}".encode()))
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/console/events",
            "raw_path": b"/console/events",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": (ADDRESS, 50000),
            "server": ("t", 80),
        }
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self._client_gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.started.set()
            elif message["type"] == "http.response.body":
                self.body += message.get("body", b"")
                self._changed.set()
                if not message.get("more_body", False):
                    self.ended.set()

        try:
            await self.app(scope, receive, send)
        finally:
            self.started.set()
            self.ended.set()
            self._changed.set()

    async def shows(self, text: str) -> None:
        """Wait until the stream has sent `text`."""
        async with asyncio.timeout(WAIT):
            while text not in self.text:
                assert not self.ended.is_set(), f"the stream ended without {text!r}:\n{self.text}"
                self._changed.clear()
                await self._changed.wait()

    async def has_ended(self) -> bool:
        try:
            await asyncio.wait_for(self.ended.wait(), WAIT)
        except TimeoutError:
            return False
        assert self.task is not None
        await asyncio.wait_for(self.task, WAIT)
        return True

    async def close(self) -> None:
        self._client_gone.set()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def streams(web: Console) -> AsyncIterator[Callable[[Agent], Awaitable[Stream]]]:
    opened: list[Stream] = []

    async def open_stream(agent: Agent) -> Stream:
        stream = Stream(web.app, agent.session_cookie)
        opened.append(stream)
        return await stream.open()

    yield open_stream
    for stream in opened:
        await stream.close()


async def log_out(web: Console, carol: Agent) -> None:
    assert (await carol.submit("/console/logout")).status_code == 303


async def new_password(web: Console, carol: Agent) -> None:
    await set_reviewer_password(web.db, REVIEWER, "a brand new password")


async def removed(web: Console, carol: Agent) -> None:
    assert await remove_reviewer(web.db, REVIEWER)


ENDINGS = [log_out, new_password, removed]


@pytest.mark.parametrize("end_login", ENDINGS, ids=lambda f: f.__name__)
async def test_a_stream_ends_with_its_login_and_delivers_nothing_after(
    web, carol, streams, end_login
):
    stream = await streams(carol)
    await web.add_approval("call-before", arguments={"path": "/tmp/seen-while-logged-in"})
    await stream.shows("/tmp/seen-while-logged-in")  # the stream is live

    await end_login(web, carol)
    await web.add_approval("call-after", arguments={"secret": "sent-after-the-login-ended"})

    assert await stream.has_ended(), "the stream outlived its login"
    assert "call-after" not in stream.text
    assert "sent-after-the-login-ended" not in stream.text


@pytest.mark.parametrize("end_login", ENDINGS, ids=lambda f: f.__name__)
async def test_an_idle_stream_ends_within_heartbeats_of_its_login(web, carol, streams, end_login):
    stream = await streams(carol)

    await end_login(web, carol)

    assert await stream.has_ended(), "the stream outlived its login"
    assert "event:" not in stream.text


async def test_a_stream_stays_open_while_logged_in_and_another_logout_does_not_end_it(
    web, carol, streams
):
    stream = await streams(carol)
    dave = await web.logged_in("dave")
    daves = await streams(dave)

    await log_out(web, dave)
    await asyncio.sleep(10 * HEARTBEAT)  # many logins checks later
    await web.add_approval("call-later", arguments={"path": "/tmp/still-delivered"})

    await stream.shows("/tmp/still-delivered")
    assert not stream.ended.is_set()
    assert await daves.has_ended()
    assert "still-delivered" not in daves.text


async def test_the_log_is_replayed_only_while_the_login_lives(web):
    """Before sending anything, the log it replays included (a reconnect with
    Last-Event-ID), the stream looks the login up again."""
    await web.add_reviewer()
    for n in range(3):
        await web.add_approval(f"call-{n}", arguments={"path": f"/tmp/replayed-{n}"})
    hub = web.app.state.hub
    first = await first_page(hub, 0, APPROVAL_EVENTS, None)
    live = await start_console_session(web.db, REVIEWER, timedelta(hours=1))
    ended = await start_console_session(web.db, REVIEWER, timedelta(hours=1))
    await end_console_session(web.db, ended)

    def while_logged_in(token: str):
        allowed = partial(_logged_in, hub.connection(), token)
        return event_stream(
            hub, 0, first, APPROVAL_EVENTS, None, still_allowed=allowed, check_every=HEARTBEAT
        )

    replayed = while_logged_in(live)
    sent = [await anext(replayed) for _ in range(3)]
    await replayed.aclose()
    async with asyncio.timeout(WAIT):  # the stream ends, at once
        nothing = [event async for event in while_logged_in(ended)]

    assert [e.event for e in sent] == ["approval.created"] * 3
    assert "/tmp/replayed-2" in str(sent[-1].data)
    assert nothing == []


async def test_a_new_stream_with_the_cookie_of_an_ended_login_is_refused(web, carol):
    cookie = carol.session_cookie
    await log_out(web, carol)

    refused = Stream(web.app, cookie)
    await asyncio.wait_for(refused._run(), WAIT)

    assert refused.status == 401
