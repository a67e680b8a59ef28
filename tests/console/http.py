"""Helpers of the console's HTTP tests: the app served through ASGI (no browser, no
server), user agents that log in through the form and post forms with the CSRF
token read from the page, and seeding through the REST API."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from html import unescape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.config import Settings
from agent_runtime.console import auth
from agent_runtime.main import create_app
from agent_runtime.services.reviewers import add_reviewer
from tests.fixtures.apps import empty_app_database
from tests.fixtures.backends import Backend

__all__ = [
    "ADDRESS",
    "PASSWORD",
    "REVIEWER",
    "SESSION_COOKIE",
    "Agent",
    "Console",
    "cookie_attributes",
    "csrf_token",
    "elements",
    "open_console",
    "query_of",
    "tool_call",
]

PASSWORD = "correct horse battery staple"
REVIEWER = "carol"
ADDRESS = "192.0.2.10"  # the client address the app sees (TEST-NET-1)
SESSION_COOKIE = "console_session"

_CSRF = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]*)">')


# --- reading pages ------------------------------------------------------------------


def csrf_token(html: str) -> str:
    """The value of the page's first `csrf_token` form field."""
    found = _CSRF.search(html)
    assert found, f"no csrf_token field on the page:\n{html[:2000]}"
    return unescape(found.group(1))


class _Elements(HTMLParser):
    """The text of every element `tag` (with `cls` among its classes, if given)."""

    _VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self, tag: str, cls: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.tag, self.cls = tag, cls
        self.found: list[str] = []
        self._open: list[list[str]] = []  # one text buffer per matching element being read
        self._depth: list[int] = []  # nesting of `tag` inside each of them

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._VOID:
            return
        if tag == self.tag:
            self._depth = [d + 1 for d in self._depth]
            classes = (dict(attrs).get("class") or "").split()
            if self.cls is None or self.cls in classes:
                self._open.append([])
                self._depth.append(0)

    def handle_endtag(self, tag: str) -> None:
        if tag != self.tag or not self._depth:
            return
        if self._depth[-1] == 0:
            self._depth.pop()
            self.found.append("".join(self._open.pop()))
        self._depth = [d - 1 if d else d for d in self._depth]

    def handle_data(self, data: str) -> None:
        for buffer in self._open:
            buffer.append(data)


def elements(html: str, tag: str, cls: str | None = None) -> list[str]:
    """The text content of every `<tag class="... cls ...">` of the page, in order."""
    parser = _Elements(tag, cls)
    parser.feed(html)
    parser.close()
    return parser.found


def cookie_attributes(response: httpx.Response, name: str) -> dict[str, str]:
    """The `Set-Cookie` of `name` in `response`: its value under "value", and each
    attribute by its lower-case name ("" for a flag such as httponly)."""
    for header in response.headers.get_list("set-cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        key, _, value = first.partition("=")
        if key == name:
            attributes = {"value": value}
            for part in rest:
                attr, _, attr_value = part.partition("=")
                attributes[attr.lower()] = attr_value
            return attributes
    raise AssertionError(f"no Set-Cookie for {name!r} in {response.headers.get_list('set-cookie')}")


def query_of(location: str) -> dict[str, str]:
    """The query of a redirect target, one value per name."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """An assistant message's OpenAI-shaped tool call."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


# --- user agents ----------------------------------------------------------------------


class Agent:
    """One user agent (a browser, as far as the server can tell): its own cookies,
    its own client address; follows no redirect by itself."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)

    async def post(self, path: str, data: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.http.post(path, data=data, **kwargs)

    async def login_form(self, next_path: str | None = None) -> str:
        """Open the login page (which sets the login form's CSRF cookie); its HTML."""
        params = {"next": next_path} if next_path is not None else None
        page = await self.get("/console/login", params=params)
        assert page.status_code == 200, page.text
        return page.text

    async def login(
        self,
        name: str = REVIEWER,
        password: str = PASSWORD,
        *,
        next_path: str | None = None,
    ) -> httpx.Response:
        """Fill in and send the login form, as read from the login page."""
        token = csrf_token(await self.login_form())
        form = {"csrf_token": token, "username": name, "password": password}
        if next_path is not None:
            form["next"] = next_path
        return await self.post("/console/login", form)

    async def csrf(self, path: str = "/console/") -> str:
        """The CSRF token of the logged-in session, read from a console page."""
        page = await self.get(path)
        assert page.status_code == 200, f"{path}: {page.status_code}\n{page.text[:2000]}"
        return csrf_token(page.text)

    async def submit(
        self, path: str, data: Any = (), *, csrf: bool = True, token_from: str = "/console/"
    ) -> httpx.Response:
        """Post a console form; with `csrf`, its CSRF token read from `token_from`
        first, as the page that holds the form would have it."""
        form = list(data.items() if isinstance(data, dict) else data)
        if csrf:
            form.insert(0, ("csrf_token", await self.csrf(token_from)))
        return await self.post(path, _encoded(form))

    @property
    def session_cookie(self) -> str | None:
        return self.http.cookies.get(SESSION_COOKIE)

    async def get_with_cookie(self, path: str, value: str) -> httpx.Response:
        """GET with exactly this session cookie (a replayed or forged one)."""
        return await self.get(path, headers={"Cookie": f"{SESSION_COOKIE}={value}"})


def _encoded(form: Iterable[tuple[str, Any]]) -> dict[str, list[str]]:
    """Form fields, repeated names kept (several `call_id` values of a batch)."""
    out: dict[str, list[str]] = {}
    for key, value in form:
        out.setdefault(key, []).append(str(value))
    return out


# --- the console ---------------------------------------------------------------------


class Console:
    """The app with its lifespan running on an emptied database: user agents on it,
    the REST API to seed it (with the API key, when one is set), its database."""

    def __init__(self, app: FastAPI, backend: Backend, base_url: str, api_key: str | None) -> None:
        self.app, self.backend, self.base_url = app, backend, base_url
        self._clients: list[httpx.AsyncClient] = []
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.api = self._client(ADDRESS, headers)

    def _client(self, address: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(
            app=self.app, raise_app_exceptions=False, client=(address, 50000)
        )
        client = httpx.AsyncClient(transport=transport, base_url=self.base_url, headers=headers)
        self._clients.append(client)
        return client

    def agent(self, address: str = ADDRESS) -> Agent:
        """A new user agent: no cookies yet."""
        return Agent(self._client(address))

    @property
    def db(self) -> BaseDBAsyncClient:
        """The app's database connection (Tortoise is initialised by its lifespan)."""
        return Tortoise.get_connection(self.backend.database.dialect)

    async def add_reviewer(self, name: str = REVIEWER, password: str = PASSWORD) -> str:
        await add_reviewer(self.db, name, password)
        return name

    async def logged_in(self, name: str = REVIEWER, address: str = ADDRESS) -> Agent:
        """A new user agent logged in as `name` (added as a reviewer first)."""
        await self.add_reviewer(name)
        agent = self.agent(address)
        answer = await agent.login(name)
        assert answer.status_code == 303, answer.text
        return agent

    # REST seeding

    async def _api(self, method: str, path: str, body: Any = None) -> Any:
        answer = await self.api.request(method, path, json=body)
        assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    async def save_session(
        self, session_id: str, messages: list[dict[str, Any]] | None = None, *, title: str = ""
    ) -> None:
        await self._api("POST", f"/sessions/{session_id}", messages or [])
        if title:
            await self._api("PATCH", f"/sessions/{session_id}", {"title": title})

    async def add_approval(
        self,
        call_id: str,
        *,
        session_id: str = "s1",
        tool_name: str = "delete_file",
        arguments: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "session_id": session_id,
            "call_id": call_id,
            "tool_name": tool_name,
            "arguments": {"path": f"/tmp/{call_id}"} if arguments is None else arguments,
            "reason": reason,
        }
        return await self._api("POST", "/approvals", body)  # type: ignore[no-any-return]

    async def approval(self, call_id: str) -> dict[str, Any]:
        return await self._api("GET", f"/approvals/{call_id}")  # type: ignore[no-any-return]

    async def decide(self, call_id: str, status: str, decided_by: str) -> dict[str, Any]:
        body = {"status": status, "decided_by": decided_by}
        return await self._api("POST", f"/approvals/{call_id}/decision", body)  # type: ignore[no-any-return]

    async def put_agent_context(self, session_id: str, context: dict[str, Any]) -> None:
        await self._api("PUT", f"/sessions/{session_id}/agent-context", context)

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()


@asynccontextmanager
async def open_console(
    backend: Backend,
    *,
    base_url: str = "http://t",
    api_key: str | None = None,
    **settings: Any,
) -> AsyncIterator[Console]:
    """The app on `backend`'s database, emptied, with its lifespan running."""
    app = create_app(Settings(db_url=backend.url, api_key=api_key, **settings))
    async with LifespanManager(app):
        await empty_app_database(app, backend)
        # The worker's copy of the cookie signing keys is process-wide: drop the one
        # an earlier test (another database) left, as a new process starts without.
        auth._keys.keys = []
        console = Console(app, backend, base_url, api_key)
        try:
            yield console
        finally:
            await console.close()
