"""Forwarded headers (`X-Forwarded-For`, `X-Forwarded-Proto`) count only from the
proxies of AGENT_RUNTIME__FORWARDED_ALLOW_IPS, by default from no one: the client
address the console's login throttle counts, and the scheme that makes the console
cookies `Secure`, follow them.

Over ASGI (the app with a given peer address) on every backend; then real servers
(`test_live_*`): `agent-runtime serve`, and plain `uvicorn agent_runtime.main:app`,
whose own proxy headers trust 127.0.0.1 unless the app disarms them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from uvicorn.lifespan.on import LifespanOn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from agent_runtime.config import Settings
from agent_runtime.console.auth import COOKIE, LOGIN_COOKIE
from agent_runtime.main import create_app
from agent_runtime.services.reviewers import LOGIN_FAILURES_ALLOWED
from harness.servers import LiveServer, ServerStartError, start_serve
from models import LoginFailure
from tests.console.browser import add_reviewers, reset_database
from tests.console.http import (
    PASSWORD,
    REVIEWER,
    Console,
    cookie_attributes,
    csrf_token,
    open_console,
)
from tests.fixtures import servers
from tests.fixtures.backends import Backend

WRONG = "not the password at all"
PEER = "127.0.0.1"  # a process on the server's machine: what uvicorn trusts by default
PROXY = "192.0.2.1"  # TEST-NET-1: addresses only ever written into ASGI scopes and headers
CLIENTS = [f"203.0.113.{n}" for n in range(1, 40)]  # TEST-NET-3


def forwarded(client: str, proto: str | None = None) -> dict[str, str]:
    headers = {"X-Forwarded-For": client}
    if proto:
        headers["X-Forwarded-Proto"] = proto
    return headers


# --- logging in, cookies by hand (a Secure cookie is not sent back over http://) ----------


async def login(
    http: httpx.AsyncClient, name: str, password: str, headers: dict[str, str]
) -> httpx.Response:
    """The login form read and sent with `headers` on both requests."""
    page = await http.get("/console/login", headers=headers)
    assert page.status_code == 200, page.text
    cookie = cookie_attributes(page, LOGIN_COOKIE)["value"]
    form = {"csrf_token": csrf_token(page.text), "username": name, "password": password}
    http.cookies.clear()
    return await http.post(
        "/console/login", data=form, headers={**headers, "Cookie": f"{LOGIN_COOKIE}={cookie}"}
    )


def login_sync(
    http: httpx.Client, name: str, password: str, headers: dict[str, str]
) -> httpx.Response:
    page = http.get("/console/login", headers=headers)
    assert page.status_code == 200, page.text
    cookie = cookie_attributes(page, LOGIN_COOKIE)["value"]
    form = {"csrf_token": csrf_token(page.text), "username": name, "password": password}
    http.cookies.clear()
    return http.post(
        "/console/login", data=form, headers={**headers, "Cookie": f"{LOGIN_COOKIE}={cookie}"}
    )


def secure(response: httpx.Response, name: str) -> bool:
    return "secure" in cookie_attributes(response, name)


async def failed_addresses(web: Console) -> set[str]:
    """The client addresses the login throttle has counted failures for."""
    scopes = await LoginFailure.all().using_db(web.db).values_list("scope", flat=True)
    return {str(s).removeprefix("addr:") for s in scopes if str(s).startswith("addr:")}


# --- over ASGI --------------------------------------------------------------------------


async def test_by_default_a_rotating_x_forwarded_for_does_not_escape_the_throttle(backend):
    async with open_console(backend) as web:
        agent = web.agent(PEER).http
        answers = []
        for n in range(LOGIN_FAILURES_ALLOWED + 1):  # a new name each time: the address counts
            answer = await login(agent, f"guess-{n}", WRONG, forwarded(CLIENTS[n]))
            answers.append(answer.status_code)

        assert answers == [401] * LOGIN_FAILURES_ALLOWED + [429]
        assert await failed_addresses(web) == {PEER}


async def test_by_default_x_forwarded_proto_does_not_make_cookies_secure(backend):
    async with open_console(backend) as web:
        await web.add_reviewer()
        agent = web.agent(PEER).http

        page = await agent.get("/console/login", headers=forwarded(CLIENTS[0], "https"))
        answer = await login(agent, REVIEWER, PASSWORD, forwarded(CLIENTS[0], "https"))

        assert answer.status_code == 303, answer.text
        assert not secure(page, LOGIN_COOKIE)
        assert not secure(answer, COOKIE)


async def test_a_trusted_proxy_names_the_client_and_its_scheme(backend):
    async with open_console(backend, forwarded_allow_ips=PEER) as web:
        await web.add_reviewer()
        agent = web.agent(PEER).http
        # Each client has its own count: more failures than one address may have...
        spread = [
            (await login(agent, f"guess-{n}", WRONG, forwarded(client))).status_code
            for n, client in enumerate(CLIENTS[: LOGIN_FAILURES_ALLOWED + 3])
        ]
        # ...and one client is held up on its own.
        one = CLIENTS[-1]
        for n in range(LOGIN_FAILURES_ALLOWED):
            await login(agent, f"again-{n}", WRONG, forwarded(one))
        held = await login(agent, REVIEWER, PASSWORD, forwarded(one))
        page = await agent.get("/console/login", headers=forwarded(CLIENTS[-2], "https"))
        admitted = await login(agent, REVIEWER, PASSWORD, forwarded(CLIENTS[-2], "https"))

        assert spread == [401] * (LOGIN_FAILURES_ALLOWED + 3)
        assert held.status_code == 429
        assert admitted.status_code == 303, admitted.text
        assert secure(page, LOGIN_COOKIE)
        assert secure(admitted, COOKIE)
        assert PEER not in await failed_addresses(web)
        assert one in await failed_addresses(web)


async def test_forwarded_headers_from_a_peer_outside_the_trusted_networks_are_ignored(backend):
    async with open_console(backend, forwarded_allow_ips=f"{PROXY}/32, 198.51.100.0/24") as web:
        await web.add_reviewer()
        outsider = web.agent("192.0.2.77").http
        through_proxy = web.agent(PROXY).http
        in_network = web.agent("198.51.100.20").http

        await login(outsider, "nobody", WRONG, forwarded(CLIENTS[0]))
        await login(through_proxy, "nobody", WRONG, forwarded(CLIENTS[1]))
        await login(in_network, "nobody", WRONG, forwarded(CLIENTS[2]))
        cookie = await login(outsider, REVIEWER, PASSWORD, forwarded(CLIENTS[0], "https"))

        assert await failed_addresses(web) == {"192.0.2.77", CLIENTS[1], CLIENTS[2]}
        assert cookie.status_code == 303
        assert not secure(cookie, COOKIE)


async def test_the_client_is_the_last_address_not_a_trusted_proxy(backend):
    """Each proxy appends the address it got the request from: read from the right,
    the first address that is not a trusted proxy is the client (what the client
    wrote itself further left is not believed)."""
    async with open_console(backend, forwarded_allow_ips=f"{PEER},{PROXY}") as web:
        agent = web.agent(PEER).http
        chain = f"198.51.100.66, {CLIENTS[0]}, {PROXY}"  # forged, real client, inner proxy

        await login(agent, "nobody", WRONG, forwarded(chain))

        assert await failed_addresses(web) == {CLIENTS[0]}


async def test_any_peer_may_forward_with_a_star(backend):
    async with open_console(backend, forwarded_allow_ips="*") as web:
        await login(web.agent("198.51.100.5").http, "nobody", WRONG, forwarded(CLIENTS[3]))

        assert await failed_addresses(web) == {CLIENTS[3]}


# --- real servers --------------------------------------------------------------------


@contextmanager
def live(
    backend: Backend, log_dir: Path, *, uvicorn: bool = False, **env: str
) -> Iterator[LiveServer]:
    """`agent-runtime serve` (or plain uvicorn) on `backend`'s emptied database, with a
    reviewer; stopped at the end."""
    reset_database(backend.url)
    add_reviewers(backend.url, REVIEWER)
    settings = {**backend.env, **{f"AGENT_RUNTIME__{k.upper()}": v for k, v in env.items()}}
    if uvicorn:
        server = servers.start_uvicorn(backend, log_dir, env=settings)
    else:
        try:
            server = start_serve(settings, log_dir)
        except ServerStartError as exc:
            pytest.fail(str(exc))
    try:
        yield server
    finally:
        assert server.stop(), server.output()[-5000:]


def access_clients(server: LiveServer) -> list[str]:
    """The client address of each login POST in the server's access log."""
    log = server.stdout.read_text(errors="replace")
    return re.findall(r"(\S+):\d+ - \"POST /console/login HTTP/1.1\"", log)


def test_live_serve_ignores_forwarded_headers_by_default(backend, tmp_path):
    with live(backend, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        answers = [
            login_sync(http, f"guess-{n}", WRONG, forwarded(CLIENTS[n])).status_code
            for n in range(LOGIN_FAILURES_ALLOWED + 1)
        ]
        with httpx.Client(base_url=server.url) as other:  # the same address, so held up too
            held = login_sync(other, REVIEWER, PASSWORD, forwarded(CLIENTS[-1], "https"))

    assert answers == [401] * LOGIN_FAILURES_ALLOWED + [429]
    assert held.status_code == 429
    assert set(access_clients(server)) == {PEER}


def test_live_serve_trusts_the_configured_proxy(backend, tmp_path):
    with (
        live(backend, tmp_path, forwarded_allow_ips=PEER) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        answers = [
            login_sync(http, f"guess-{n}", WRONG, forwarded(client)).status_code
            for n, client in enumerate(CLIENTS[: LOGIN_FAILURES_ALLOWED + 1])
        ]
        admitted = login_sync(http, REVIEWER, PASSWORD, forwarded(CLIENTS[-1], "https"))

    assert answers == [401] * (LOGIN_FAILURES_ALLOWED + 1)
    assert admitted.status_code == 303, admitted.text
    assert secure(admitted, COOKIE)
    assert access_clients(server) == [*CLIENTS[: LOGIN_FAILURES_ALLOWED + 1], CLIENTS[-1]]


def test_live_plain_uvicorn_trusts_no_forwarded_headers_by_default_either(tmp_path, databases):
    """`uvicorn agent_runtime.main:app` wraps the app in its own proxy headers,
    trusting 127.0.0.1: the app disarms them at start-up."""
    backend = databases.backend("sqlite")
    with live(backend, tmp_path, uvicorn=True) as server, httpx.Client(base_url=server.url) as http:
        answers = [
            login_sync(http, f"guess-{n}", WRONG, forwarded(CLIENTS[n], "https")).status_code
            for n in range(LOGIN_FAILURES_ALLOWED + 1)
        ]

    assert answers == [401] * LOGIN_FAILURES_ALLOWED + [429]
    assert set(access_clients(server)) == {PEER}
    assert "uvicorn's proxy headers" in server.errors()


def test_live_plain_uvicorn_trusts_the_configured_proxy(tmp_path, databases):
    backend = databases.backend("sqlite")
    with (
        live(backend, tmp_path, uvicorn=True, forwarded_allow_ips=PEER) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        answers = [
            login_sync(http, f"guess-{n}", WRONG, forwarded(client)).status_code
            for n, client in enumerate(CLIENTS[: LOGIN_FAILURES_ALLOWED + 1])
        ]
        admitted = login_sync(http, REVIEWER, PASSWORD, forwarded(CLIENTS[-1], "https"))

    assert answers == [401] * (LOGIN_FAILURES_ALLOWED + 1)
    assert secure(admitted, COOKIE)
    assert access_clients(server) == [*CLIENTS[: LOGIN_FAILURES_ALLOWED + 1], CLIENTS[-1]]


# --- uvicorn's own proxy headers, in-process ----------------------------------------------


@pytest.mark.parametrize(
    ("server_trusts", "level"),
    [(None, logging.INFO), (f"{PROXY}, 127.0.0.1", logging.WARNING)],
    ids=["uvicorn-default", "chosen"],
)
async def test_uvicorns_own_proxy_headers_are_disarmed_when_the_app_starts(
    backend, caplog, server_trusts, level
):
    config = uvicorn.Config(
        create_app(Settings(**backend.settings)), forwarded_allow_ips=server_trusts, log_config=None
    )
    config.load()
    outer = config.loaded_app
    assert isinstance(outer, ProxyHeadersMiddleware)
    trusted_before = PEER in outer.trusted_hosts
    lifespan = LifespanOn(config)
    with caplog.at_level(logging.INFO, logger="agent_runtime"):
        await lifespan.startup()
        await lifespan.shutdown()

    assert trusted_before
    assert not lifespan.startup_failed
    assert PEER not in outer.trusted_hosts
    assert PROXY not in outer.trusted_hosts
    said = [r for r in caplog.records if "uvicorn's proxy headers" in r.getMessage()]
    assert [r.levelno for r in said] == [level]
