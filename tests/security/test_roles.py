"""Keys and roles: an agent's key cannot decide its own tool calls, a reviewer's key
decides as its account whatever the body says, every route declares what it needs,
and a revoked key stops working within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.api.routes.sessions import PlainRoute
from agent_runtime.client import AsyncAgentRuntimeClient, RemoteDatabaseService
from agent_runtime.config import Settings
from agent_runtime.core.auth import CACHE_SECONDS, GRANTS, Permission
from agent_runtime.errors import ForbiddenError
from agent_runtime.main import create_app
from agent_runtime.services import api_keys as api_key_service
from agent_runtime.services import reviewers as reviewer_service
from models import ApiKey, Role
from tests.api.test_auth import every_route, status_of
from tests.fixtures.apps import empty_app_database
from tests.fixtures.backends import Backend

ADMIN_KEY = "bootstrap-admin-key"
STREAMS = frozenset({"/events"})
APPROVAL = {"session_id": "s1", "call_id": "c1", "tool_name": "pay", "arguments": {"amount": 5}}


@dataclass
class Keyed:
    app: FastAPI
    client: httpx.AsyncClient
    db: BaseDBAsyncClient
    tokens: dict[str, str]  # role -> token

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
async def keyed(backend: Backend) -> AsyncIterator[Keyed]:
    """The app with a bootstrap admin key, and one database key per role (the
    reviewer key decides as the reviewer account `alice`)."""
    app = create_app(Settings(**backend.settings, api_key=ADMIN_KEY))
    async with LifespanManager(app):
        db = await empty_app_database(app, backend)
        await reviewer_service.add_reviewer(db, "alice", "correct horse battery")
        tokens = {"admin": ADMIN_KEY}
        for role in (Role.AGENT, Role.REVIEWER, Role.METRICS):
            reviewer = "alice" if role == Role.REVIEWER else None
            token, _ = await api_key_service.add_api_key(db, f"{role}-key", role, reviewer=reviewer)
            tokens[role.value] = token
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Keyed(app, client, db, tokens)


def route_permission(route: APIRoute) -> Permission | None:
    """The permission a route's dependencies ask for (None: it declares none)."""
    found = [
        dep.call.permission  # type: ignore[union-attr]
        for dep in route.dependant.dependencies
        if hasattr(dep.call, "permission")
    ]
    assert len(found) <= 1, route.path
    return found[0] if found else None


def api_routes(app: FastAPI) -> list[APIRoute]:
    return [
        c.route
        for c in iter_route_contexts(app.routes)
        if isinstance(c.route, APIRoute)
        and not c.path.startswith(("/console", "/health"))
        and c.route.include_in_schema
    ]


def test_every_api_route_declares_the_permission_it_needs():
    app = create_app(Settings(db_url="sqlite://:memory:"))

    undeclared = [r.path for r in api_routes(app) if route_permission(r) is None]

    assert api_routes(app) and undeclared == []


def test_plain_handlers_check_exactly_the_permission_their_route_declares():
    """The sessions routes with a plain handler (api/routes/sessions.py) skip FastAPI's
    dependency solving for their common case: the handler awaits the route's one
    declared dependency, its permission check, and nothing may have been added to it
    (an include's dependencies would not run)."""
    app = create_app(Settings(db_url="sqlite://:memory:"))

    plain = {
        (method, c.path): c
        for c in iter_route_contexts(app.routes)
        if isinstance(c.route, PlainRoute) and c.route.plain_permission is not None
        for method in c.methods
    }

    assert set(plain) >= {("GET", "/sessions/{session_id}"), ("POST", "/sessions/{session_id}")}
    for context in plain.values():
        declared = route_permission(context.route)
        assert declared is not None and context.route.plain_permission == declared
        assert [d.dependency for d in context.dependencies] == [
            d.dependency for d in context.route.dependencies
        ]


def test_the_grants_are_what_the_roles_promise():
    assert GRANTS[Role.AGENT] == {Permission.READ, Permission.WRITE}
    assert GRANTS[Role.REVIEWER] == {Permission.READ, Permission.DECIDE}
    assert GRANTS[Role.ADMIN] == set(Permission)
    assert GRANTS[Role.METRICS] == {Permission.METRICS}


async def test_each_role_gets_403_exactly_where_its_grants_end(keyed):
    """Every API route, with every role's key: 403 with the error body where the
    role lacks the route's permission, past authorisation everywhere else."""
    permissions = {
        (method, r.path.replace("{session_id}", "x").replace("{call_id}", "x")): route_permission(r)
        for r in api_routes(keyed.app)
        for method in r.methods
    }
    for role in ("agent", "reviewer", "admin", "metrics"):
        for method, path in every_route(keyed.app):
            permission = permissions.get((method, path))
            if permission is None:
                continue
            headers = keyed.auth(role)
            if path in STREAMS:
                status = await status_of(keyed.app, method, path, headers)
                body = None
            else:
                response = await keyed.client.request(method, path, headers=headers, json={})
                status, body = response.status_code, response
            if permission in GRANTS[Role(role)]:
                assert status not in (401, 403), (role, method, path, status)
            else:
                assert status == 403, (role, method, path, status)
                if body is not None:
                    assert body.json()["error"]["code"] == "forbidden"
                    assert role in body.json()["error"]["message"]


async def test_an_agent_cannot_approve_its_own_tool_call(keyed):
    agent = keyed.auth("agent")
    assert (await keyed.client.post("/approvals", json=APPROVAL, headers=agent)).status_code == 201

    decided = await keyed.client.post(
        "/approvals/c1/decision",
        json={"status": "approved", "decided_by": "alice"},
        headers=agent,
    )
    legacy = await keyed.client.put(
        "/approvals/c1/status", json={"status": "approved"}, headers=agent
    )

    assert decided.status_code == 403 and legacy.status_code == 403
    assert "reviewer or admin key" in legacy.json()["error"]["message"]
    stored = (await keyed.client.get("/approvals/c1", headers=agent)).json()
    assert stored["status"] == "pending" and stored["decided_by"] is None


async def test_a_reviewer_key_decides_as_its_account_whatever_the_body_says(keyed):
    await keyed.client.post("/approvals", json=APPROVAL, headers=keyed.auth("agent"))

    decided = await keyed.client.post(
        "/approvals/c1/decision",
        json={"status": "approved", "decided_by": "mallory"},
        headers=keyed.auth("reviewer"),
    )
    events = await keyed.client.get("/approvals/c1/events", headers=keyed.auth("agent"))

    assert decided.status_code == 200
    assert decided.json()["decided_by"] == "alice"
    decision = [e for e in events.json() if e["type"] == "approval.decided"]
    assert [e["actor"] for e in decision] == ["alice"]


async def test_the_legacy_status_update_with_a_reviewer_key_records_the_account(keyed):
    await keyed.client.post("/approvals", json=APPROVAL, headers=keyed.auth("agent"))

    updated = await keyed.client.put(
        "/approvals/c1/status", json={"status": "rejected"}, headers=keyed.auth("reviewer")
    )

    assert updated.json() == {"updated": True}
    stored = (await keyed.client.get("/approvals/c1", headers=keyed.auth("reviewer"))).json()
    assert (stored["status"], stored["decided_by"]) == ("rejected", "alice")


async def test_a_reviewer_key_cannot_write_record_claim_or_report(keyed):
    reviewer = keyed.auth("reviewer")
    await keyed.client.post("/approvals", json=APPROVAL, headers=keyed.auth("agent"))
    await keyed.client.post("/approvals/c1/decision", json={"status": "approved"}, headers=reviewer)

    attempts = [
        keyed.client.post("/sessions/s2", json=[], headers=reviewer),
        keyed.client.post("/approvals", json={**APPROVAL, "call_id": "c2"}, headers=reviewer),
        keyed.client.post("/approvals/c1/claim", headers=reviewer),
        keyed.client.post(
            "/approvals/c1/result",
            json={"claim_token": "x", "status": "executed"},
            headers=reviewer,
        ),
        keyed.client.post("/maintenance/cleanup", json={}, headers=reviewer),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 403, response.request.url

    stored = (await keyed.client.get("/approvals/c1", headers=reviewer)).json()
    assert stored["status"] == "approved"
    assert (await keyed.client.get("/sessions/s2", headers=reviewer)).status_code == 404


async def test_metrics_need_a_metrics_or_admin_key_and_a_metrics_key_opens_nothing_else(keyed):
    async def status(path: str, role: str) -> int:
        return (await keyed.client.get(path, headers=keyed.auth(role))).status_code

    assert await status("/metrics", "metrics") == 200
    assert await status("/metrics", "admin") == 200
    assert await status("/metrics", "agent") == 403
    assert await status("/metrics", "reviewer") == 403
    for path in ("/sessions", "/approvals", "/docs", "/openapi.json"):
        assert await status(path, "metrics") == 403, path


async def test_a_revoked_key_answers_401_within_seconds(keyed):
    agent = keyed.auth("agent")
    assert (await keyed.client.get("/sessions", headers=agent)).status_code == 200

    assert await api_key_service.revoke_api_key(keyed.db, "agent-key")
    revoked_at = time.monotonic()
    while (await keyed.client.get("/sessions", headers=agent)).status_code != 401:
        assert time.monotonic() - revoked_at < CACHE_SECONDS + 1
        await asyncio.sleep(0.05)


async def test_removing_a_reviewer_account_revokes_its_keys(keyed):
    assert await reviewer_service.remove_reviewer(keyed.db, "alice")
    await asyncio.sleep(CACHE_SECONDS)

    response = await keyed.client.get("/sessions", headers=keyed.auth("reviewer"))

    assert response.status_code == 401


async def test_only_a_hash_of_a_key_is_stored(keyed):
    rows = await ApiKey.all().using_db(keyed.db).values()

    stored = repr(rows)
    assert len(rows) == 3
    for role in ("agent", "reviewer", "metrics"):
        assert keyed.tokens[role] not in stored


async def test_a_key_in_the_database_turns_authentication_on(backend):
    app = create_app(Settings(**backend.settings))  # no AGENT_RUNTIME__API_KEY
    async with LifespanManager(app):
        db = await empty_app_database(app, backend)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/sessions")).status_code == 200
            token, _ = await api_key_service.add_api_key(db, "first", "agent")
            await asyncio.sleep(CACHE_SECONDS)

            anonymous = await client.get("/sessions")
            keyed = await client.get("/sessions", headers={"Authorization": f"Bearer {token}"})

    assert anonymous.status_code == 401
    assert keyed.status_code == 200


async def test_remote_service_with_an_agent_key_is_refused_the_legacy_status_update(keyed):
    transport = httpx.ASGITransport(app=keyed.app, raise_app_exceptions=False)
    async with AsyncAgentRuntimeClient(
        "http://t", api_key=keyed.tokens["agent"], transport=transport
    ) as client:
        remote = RemoteDatabaseService(client=client)
        await remote.create_approval(None, "s1", "c1", "pay", {"amount": 5})

        with pytest.raises(ForbiddenError, match="reviewer or admin key"):
            await remote.update_approval_status(None, "c1", "approved")

        assert (await client.get_approval("c1")).status == "pending"


async def test_a_key_for_a_role_other_than_reviewer_takes_no_reviewer_account(keyed):
    from agent_runtime.errors import InvalidInputError, NotFoundError

    with pytest.raises(InvalidInputError):
        await api_key_service.add_api_key(keyed.db, "x", "agent", reviewer="alice")
    with pytest.raises(InvalidInputError):
        await api_key_service.add_api_key(keyed.db, "y", "reviewer")
    with pytest.raises(NotFoundError):
        await api_key_service.add_api_key(keyed.db, "z", "reviewer", reviewer="nobody")
    with pytest.raises(InvalidInputError):
        await api_key_service.add_api_key(keyed.db, "w", "root")
    assert await ApiKey.all().using_db(keyed.db).count() == 3
