"""The id rule (schemas/types.py `reachable_id`): every session id and call id the
service stores can be reached by every route and console link that names it.

Ids no URL path segment can carry (`.`, `..`, or with `/` or a control character)
are refused at creation with 422, over REST and in-process alike, and nothing is
stored; every other id (`?`, `#`, `%`, `\\`, spaces...) works everywhere, and every
console link or redirect percent-encodes it whole (`quote(id, safe="")`), so that
not even an id stored before the rule can make a link open another page.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx
import pytest
from tortoise import Tortoise

from agent_runtime.errors import InvalidInputError
from agent_runtime.services import database as svc
from agent_runtime.services.legacy_import import import_legacy, open_legacy
from models import PendingApproval
from tests.console.http import Agent, Console, csrf_token, open_console
from tests.fixtures.backends import Backend, Databases, dump_data
from tests.fixtures.legacy import (
    SOURCE_KINDS,
    LegacyDatabase,
    create_legacy_database,
    drop_legacy_database,
    legacy_id,
)

# Refused at creation: no route can take them as one path segment.
UNREACHABLE = [
    "a/b",
    "/",
    "..",
    ".",
    "../../console/logout",
    "line\nbreak",
    "tab\there",
    "\x1b[31mred",
    "\x7f",
    "\x85",  # a C1 control character
]
# Odd but reachable once percent-encoded: accepted, and every route reaches them.
REACHABLE = [
    "a b?c#d%",
    "x?y",
    "#top",
    "a\\b",
    "100%",
    "x%2Fy",
    "...",
    "a.b",
    "é🙂",
    "<&>\"'",
    "+=;,@:$!*()",
    "~_-",
    "..a",
]
MESSAGE = {"role": "user", "content": "hello"}


def path(value: str) -> str:
    """An id as one path segment, as every client should send it (a dot segment as
    `%2E`: else the client itself removes it before sending)."""
    if value in (".", ".."):
        return "%2E" * len(value)
    return quote(value, safe="")


async def dump(backend: Backend) -> dict[str, list[dict[str, Any]]]:
    return await dump_data(Tortoise.get_connection(backend.dialect))


def refused(response: httpx.Response) -> None:
    assert response.status_code == 422, (response.status_code, response.text[:500])
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["details"] and all({"loc", "msg", "type"} <= set(d) for d in error["details"])
    assert "no URL could reach it" in response.text


# --- refused at creation ----------------------------------------------------------------


@pytest.mark.parametrize("bad", UNREACHABLE)
async def test_an_approval_with_an_unreachable_id_is_refused(client, backend, bad):
    before = await dump(backend)

    as_call = await client.post(
        "/approvals", json={"session_id": "s1", "call_id": bad, "tool_name": "t"}
    )
    as_session = await client.post(
        "/approvals", json={"session_id": bad, "call_id": "c1", "tool_name": "t"}
    )

    refused(as_call)
    refused(as_session)
    assert await dump(backend) == before


# These reach the session routes (percent-encoded); "/" cannot: no route matches it.
PATH_IDS = [bad for bad in UNREACHABLE if "/" not in bad]


@pytest.mark.parametrize("bad", PATH_IDS)
async def test_a_session_with_an_unreachable_id_is_refused(client, backend, bad):
    before = await dump(backend)

    saved = await client.post(f"/sessions/{path(bad)}", json=[MESSAGE])
    appended = await client.post(f"/sessions/{path(bad)}/messages", json=[MESSAGE])
    context = await client.put(
        f"/sessions/{path(bad)}/agent-context", json={"current_agent": "triage"}
    )

    for response in (saved, appended, context):
        refused(response)
    assert await dump(backend) == before


async def test_a_slash_in_a_session_path_reaches_no_route(client, backend):
    before = await dump(backend)

    response = await client.post(f"/sessions/{path('a/b')}", json=[MESSAGE])

    assert response.status_code in (404, 405), response.text
    assert "error" in response.json()
    assert await dump(backend) == before


@pytest.mark.parametrize("bad", UNREACHABLE)
async def test_the_service_api_refuses_the_same_ids(db, bad):
    now = datetime.now(UTC)
    calls = [
        svc.save_session(db, bad, [MESSAGE], now),
        svc.append_messages(db, bad, [MESSAGE], now),
        svc.save_agent_context(db, bad, "triage", [], {}, now, None, 0),
        svc.save_pending_approval(db, "s1", bad, "t", {}),
        svc.save_pending_approval(db, bad, "c1", "t", {}),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="no URL could reach it") as caught:
            await call
        assert caught.value.status_code == 422 and caught.value.details

    assert await svc.list_all_sessions(db, include_deleted=True) == []
    assert await svc.get_pending_approvals(db, "s1") == []


async def test_ids_stored_before_the_rule_can_still_be_read_in_process(db):
    # What an older version accepted stays readable and deletable in-process.
    await stored_before_the_rule("old/call", "old/session")

    assert (await svc.get_pending_approvals(db, "old/session"))[0]["call_id"] == "old/call"
    assert await svc.delete_pending_approval(db, "old/call") is True


# --- reachable everywhere --------------------------------------------------------------


@pytest.mark.parametrize("odd", REACHABLE)
async def test_every_accepted_id_is_reachable_by_every_route(client, odd):
    created = await client.post(
        "/approvals", json={"session_id": odd, "call_id": odd, "tool_name": "t"}
    )
    saved = await client.post(f"/sessions/{path(odd)}", json=[MESSAGE])
    assert (created.status_code, saved.status_code) == (201, 200), (created.text, saved.text)

    reads = [
        f"/approvals/{path(odd)}",
        f"/approvals/{path(odd)}/events",
        f"/sessions/{path(odd)}",
        f"/sessions/{path(odd)}/messages",
        f"/sessions/{path(odd)}/stats",
        f"/sessions/{path(odd)}/approvals",
    ]
    for read in reads:
        response = await client.get(read)
        assert response.status_code == 200, (read, response.text)
    assert (await client.get(f"/approvals/{path(odd)}")).json()["call_id"] == odd
    assert (await client.get(f"/sessions/{path(odd)}")).json()["session_id"] == odd
    decided = await client.post(f"/approvals/{path(odd)}/decision", json={"status": "approved"})
    context = await client.put(
        f"/sessions/{path(odd)}/agent-context", json={"current_agent": "triage"}
    )
    assert (decided.status_code, context.status_code) == (200, 200)
    assert (await client.delete(f"/sessions/{path(odd)}?hard=true")).status_code == 204


# --- console links ---------------------------------------------------------------------


@pytest.fixture
async def web(backend: Backend) -> AsyncIterator[Console]:
    async with open_console(backend) as console:
        yield console


@pytest.fixture
async def carol(web: Console) -> Agent:
    return await web.logged_in("carol")


_HREF = re.compile(r'(?:href|action)="(/console/(?:approvals|sessions)/[^"]*)"')


def id_links(html: str, base: str = "http://t/console/") -> list[tuple[str, str]]:
    """(kind, id) of every console link to one approval or session, resolved as a
    browser resolves it (dot segments removed) and its id segment decoded."""
    found = []
    for href in _HREF.findall(html):
        resolved = urlsplit(urljoin(base, unescape(href))).path
        parts = resolved.split("/")  # "", "console", kind, id, [decide]
        assert len(parts) in (4, 5), f"{href} leads to {resolved}"
        found.append((parts[2], unquote(parts[3])))
    return found


async def stored_before_the_rule(call_id: str, session_id: str) -> None:
    """An approval as an older version (or a legacy database) may have stored it."""
    await PendingApproval.create(
        call_id=call_id,
        session_id=session_id,
        tool_name="t",
        arguments={},
        created_at=datetime.now(UTC),
    )


async def test_console_links_lead_to_their_own_page_whatever_the_id(web, carol):
    # Stored before the rule: a session id made to turn its link into another
    # approval's page once the browser removes the dot segments.
    await web.add_approval("c2", session_id="s2")
    await stored_before_the_rule("c1", "../approvals/c2")
    await stored_before_the_rule("c3/../c2", "s3")
    for odd in REACHABLE:
        await web.add_approval(odd, session_id=odd)

    inbox = await carol.get("/console/", params={"status": "all"})

    assert inbox.status_code == 200
    links = set(id_links(inbox.text))
    assert ("sessions", "../approvals/c2") in links and ("approvals", "c3/../c2") in links
    for odd in REACHABLE:
        assert {("approvals", odd), ("sessions", odd)} <= links


@pytest.mark.parametrize("odd", REACHABLE)
async def test_console_pages_of_an_odd_id_link_to_it_and_decide_it(web, carol, odd):
    await web.save_session(path(odd))  # the REST path segment: the id itself
    await web.add_approval(odd, session_id=odd)

    page = await carol.get(f"/console/approvals/{path(odd)}")
    session = await carol.get(f"/console/sessions/{path(odd)}")

    assert (page.status_code, session.status_code) == (200, 200)
    assert set(id_links(page.text)) == {("sessions", odd), ("approvals", odd)}
    assert ("approvals", odd) in id_links(session.text)
    form = {"csrf_token": csrf_token(page.text), "decision": "approved", "message": ""}
    decided = await carol.post(f"/console/approvals/{path(odd)}/decide", form)
    assert decided.status_code == 303, decided.text[:500]
    location = decided.headers["location"]
    assert location == f"/console/approvals/{path(odd)}?done=approved"
    shown = await carol.get(location)
    assert shown.status_code == 200 and (await web.approval(path(odd)))["status"] == "approved"


# --- the legacy import -------------------------------------------------------------------


@pytest.fixture(params=[(kind, "B") for kind in SOURCE_KINDS], ids=legacy_id)
def legacy_db(
    request: pytest.FixtureRequest, databases: Databases, tmp_path: Path
) -> Iterator[LegacyDatabase]:
    kind, variant = request.param
    legacy = create_legacy_database(kind, variant, tmp_path, databases)
    yield legacy
    drop_legacy_database(legacy)


async def test_the_legacy_import_reports_and_skips_unreachable_ids(db, legacy_db):
    t0 = datetime(2026, 1, 2, 3, 4, 5)
    async with legacy_db.connect() as legacy:
        for session_id in ("ok", "user/42", ".."):
            await legacy.legacy_save_session(session_id, [MESSAGE], t0)
        await legacy.add_approval("ok", "call-ok", "t", {}, created_at=t0)
        await legacy.add_approval("ok", "call/1", "t", {}, created_at=t0)
        await legacy.add_approval("user/42", "call-2", "t", {}, created_at=t0)

    async with open_legacy(legacy_db.url) as source:
        report = await import_legacy(db, source)

    assert report.failed == []
    assert await svc.list_all_sessions(db, include_deleted=True) == ["ok"]
    assert [a["call_id"] for a in await svc.get_pending_approvals(db, "ok")] == ["call-ok"]
    assert await svc.get_pending_approvals(db, "user/42") == []
    refusals = [entry for entry in report.invalid if "no URL could reach it" in entry.reason]
    assert {entry.table for entry in refusals} == {"sessions", "pending_approvals"}
    assert len(refusals) == 4, [str(e) for e in report.invalid]
    assert report.sessions_imported == 1 and report.approvals == 1
