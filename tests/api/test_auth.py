"""API-key authentication: every route but health needs the key."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi.routing import iter_route_contexts

from agent_runtime.api.routes.health import PUBLIC_PATHS
from agent_runtime.config import Settings
from agent_runtime.main import create_app
from tests.fixtures.apps import empty_app_database
from tests.fixtures.backends import ROOT

KEY = "s3cret-key"


@pytest.fixture
def app(backend):
    return create_app(Settings(**backend.settings, api_key=KEY))


def every_route(app) -> list[tuple[str, str]]:
    """(method, concrete path) for every route the app serves, docs included."""
    out = []
    for context in iter_route_contexts(app.routes):
        path = re.sub(r"\{[^}]+\}", "x", context.path)
        out += [(method, path) for method in sorted(context.methods or ()) if method != "HEAD"]
    return out


STREAMS = frozenset({"/events", "/console/events"})  # endless answers: only the status is read
CONSOLE_LOGIN = "/console/login"  # the one console route open to anyone


def is_console(path: str) -> bool:
    return path.startswith("/console/")


async def assert_console_refuses(client, app, method: str, path: str, headers) -> None:
    """A console route without a console session: a page redirects to the login
    page, anything else answers 401; an API key changes nothing."""
    if path in STREAMS:
        assert await status_of(app, method, path, headers) in (303, 401), (method, path)
        return
    response = await client.request(method, path, headers=headers, json={})
    if method == "GET":
        assert response.status_code == 303, (method, path)
        assert response.headers["location"].startswith(f"{CONSOLE_LOGIN}?next="), path
    else:
        assert response.status_code == 401, (method, path)


async def status_of(app, method: str, path: str, headers: dict[str, str]) -> int:
    """The status an ASGI app starts answering with; the client then disconnects
    (httpx's ASGI transport would wait for the end of an endless stream)."""
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    body_sent = False

    async def receive():
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await started
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start" and not started.done():
            started.set_result(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    answering = asyncio.create_task(app(scope, receive, send))
    status = await asyncio.wait_for(started, 10)
    await asyncio.wait_for(answering, 10)  # the stream ends when its client leaves
    return status


async def request_status(client, app, method: str, path: str, headers: dict[str, str]) -> int:
    if path in STREAMS:
        return await status_of(app, method, path, headers)
    return (await client.request(method, path, headers=headers, json={})).status_code


async def test_the_route_list_covers_the_api(app):
    paths = {path for _, path in every_route(app)}

    assert {
        "/sessions",
        "/sessions/x",
        "/approvals",
        "/approvals/x/decision",
        "/approvals/x/status",
        "/approvals/x/claim",
        "/approvals/x/wait",
        "/events",
        "/maintenance/cleanup",
        "/console/",
        "/console/approvals/x/decide",
        "/console/batch/confirm",
        "/console/sessions/x",
        "/console/events",
        "/docs",
        "/openapi.json",
        "/metrics",
        "/health/ready",
    } <= paths


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": KEY},
        {"Authorization": f"Basic {KEY}"},
    ],
)
async def test_every_non_health_route_refuses_a_missing_or_wrong_key(client, app, headers):
    for method, path in every_route(app):
        if path == CONSOLE_LOGIN:
            continue  # the login form: open to anyone (with its own CSRF check)
        if is_console(path):
            await assert_console_refuses(client, app, method, path, headers)
            continue
        if path in STREAMS:
            assert await status_of(app, method, path, headers) == 401, (method, path)
            continue
        response = await client.request(method, path, headers=headers, json={})
        if path in PUBLIC_PATHS:
            assert response.status_code != 401, (method, path)
            continue
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_right_key_is_let_through(client, app):
    auth = {"Authorization": f"Bearer {KEY}"}
    for method, path in every_route(app):
        if is_console(path) and path != CONSOLE_LOGIN:
            # The key is for machines: it does not open the console.
            await assert_console_refuses(client, app, method, path, auth)
            continue
        assert await request_status(client, app, method, path, auth) != 401, (method, path)

    saved = await client.post("/sessions/s1", json=[], headers=auth)
    assert saved.status_code == 200


async def test_without_a_key_nothing_is_required(backend):
    app = create_app(Settings(**backend.settings))
    async with LifespanManager(app):
        await empty_app_database(app, backend)  # no key left by another test
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/sessions")).status_code == 200


def test_serving_beyond_loopback_without_a_key_is_refused_in_one_line(tmp_path):
    env = {
        **os.environ,
        "AGENT_RUNTIME__DB_URL": f"sqlite:///{tmp_path}/a.db",
        "AGENT_RUNTIME__HOST": "0.0.0.0",
    }
    env.pop("AGENT_RUNTIME__API_KEY", None)

    result = subprocess.run(
        [sys.executable, "-m", "agent_runtime"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "without AGENT_RUNTIME__API_KEY" in result.stderr
