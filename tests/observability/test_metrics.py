"""`GET /metrics`: the Prometheus text format, and what each metric counts.

Metrics live as long as the test process (one registry): every test compares
values before and after what it does, and uses ids of its own.
"""

from __future__ import annotations

import asyncio
import math
import uuid

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from tortoise import Tortoise

from agent_runtime.config import Settings
from agent_runtime.core.metrics_collect import pool_stats
from agent_runtime.main import create_app
from agent_runtime.observability import metrics
from tests.fixtures.backends import truncate
from tests.observability.scrape import label_values, scrape, value

REQUESTS = "agent_runtime_http_request_duration_seconds_count"
SESSION_ROUTE = "/sessions/{session_id}"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def test_the_exposition_parses_and_names_every_metric(client):
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    expected = {
        "agent_runtime_http_request_duration_seconds": "histogram",
        "agent_runtime_db_pool_size": "gauge",
        "agent_runtime_db_pool_in_use": "gauge",
        "agent_runtime_db_pool_waiting": "gauge",
        "agent_runtime_approvals_pending": "gauge",
        "agent_runtime_approvals_pending_oldest_age_seconds": "gauge",
        "agent_runtime_approval_waiters": "gauge",
        "agent_runtime_event_stream_clients": "gauge",
        "agent_runtime_message_cache_hits": "counter",
        "agent_runtime_message_cache_misses": "counter",
        "agent_runtime_message_cache_stale": "counter",
        "agent_runtime_messages_written_per_save": "histogram",
        "agent_runtime_retention_runs": "counter",
    }
    for name, kind in expected.items():
        assert name in families, name
        assert families[name].type == kind, name
    ours = [name for name in families if name.startswith("agent_runtime_")]
    assert sorted(ours) == sorted(expected)


async def test_requests_are_labelled_by_route_template_never_the_raw_path(client):
    before = await scrape(client)
    first, second = new_id("abc"), new_id("def")

    assert (await client.get(f"/sessions/{first}")).status_code == 404
    assert (await client.get(f"/sessions/{second}")).status_code == 404
    assert (await client.get(f"/no/such/{first}")).status_code == 404
    after = await scrape(client)

    routes = label_values(after, REQUESTS, "route")
    assert SESSION_ROUTE in routes
    assert not any(first in route or second in route for route in routes), routes
    labels = {"route": SESSION_ROUTE, "method": "GET", "status": "404"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 2
    unmatched = {"route": metrics.UNMATCHED, "method": "GET", "status": "404"}
    assert value(after, REQUESTS, **unmatched) - value(before, REQUESTS, **unmatched) == 1


async def test_an_unknown_method_is_counted_as_other(client):
    before = await scrape(client)

    await client.request("BREW", f"/no/such/{new_id('pot')}")

    after = await scrape(client)
    assert "BREW" not in label_values(after, REQUESTS, "method")
    labels = {"route": metrics.UNMATCHED, "method": "other", "status": "404"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 1


async def test_pending_approvals_gauge_is_the_count(client):
    session = new_id("s")
    for n in range(3):
        created = await client.post(
            "/approvals",
            json={"session_id": session, "call_id": f"{session}-{n}", "tool_name": "t"},
        )
        assert created.status_code == 201
    decided = await client.post(
        f"/approvals/{session}-0/decision", json={"status": "approved", "decided_by": "a"}
    )
    assert decided.status_code == 200

    samples = await scrape(client)

    assert value(samples, "agent_runtime_approvals_pending") == 2
    assert 0 <= value(samples, "agent_runtime_approvals_pending_oldest_age_seconds") < 60


async def test_pending_approvals_gauges_are_zero_when_none_is_pending(client):
    samples = await scrape(client)

    assert value(samples, "agent_runtime_approvals_pending") == 0
    assert value(samples, "agent_runtime_approvals_pending_oldest_age_seconds") == 0


async def test_cache_counters_move_on_save_then_save(client):
    session = new_id("cache")
    first = [{"role": "user", "content": "hi"}]
    before = await scrape(client)

    assert (await client.post(f"/sessions/{session}", json=first)).status_code == 200
    middle = await scrape(client)
    second = [*first, {"role": "assistant", "content": "hello"}]
    assert (await client.post(f"/sessions/{session}", json=second)).status_code == 200
    after = await scrape(client)

    hits, misses = (
        "agent_runtime_message_cache_hits_total",
        "agent_runtime_message_cache_misses_total",
    )
    assert value(middle, misses) - value(before, misses) == 1  # never saved by this process
    assert value(middle, hits) - value(before, hits) == 0
    assert value(after, hits) - value(middle, hits) == 1  # the first save left it cached
    assert value(after, misses) - value(middle, misses) == 0


async def test_messages_per_save_observes_what_each_save_wrote(client):
    name = "agent_runtime_messages_written_per_save"
    session = new_id("per-save")
    three = [{"role": "user", "content": str(n)} for n in range(3)]
    before = await scrape(client)

    await client.post(f"/sessions/{session}", json=three)  # 3 new messages
    await client.post(f"/sessions/{session}", json=three)  # nothing changed: 0
    await client.post(f"/sessions/{session}/messages", json=three[:2])  # appends 2
    after = await scrape(client)

    assert value(after, f"{name}_count") - value(before, f"{name}_count") == 3
    assert value(after, f"{name}_sum") - value(before, f"{name}_sum") == 5

    def bucket(samples, le: str) -> float:
        return value(samples, f"{name}_bucket", le=le)

    assert bucket(after, "0.0") - bucket(before, "0.0") == 1
    assert bucket(after, "2.0") - bucket(before, "2.0") == 2  # 0 and 2
    assert bucket(after, "5.0") - bucket(before, "5.0") == 3  # and 3


async def test_waiters_and_event_streams_are_counted_while_open(client, app):
    session = new_id("wait")
    call = f"{session}-call"
    await client.post("/approvals", json={"session_id": session, "call_id": call, "tool_name": "t"})
    waiters = "agent_runtime_approval_waiters"
    before = value(await scrape(client), waiters)

    waiting = asyncio.create_task(client.get(f"/approvals/{call}/wait", params={"timeout": 30}))
    for _ in range(100):
        if value(await scrape(client), waiters) == before + 1:
            break
        await asyncio.sleep(0.05)
    assert value(await scrape(client), waiters) == before + 1

    await client.post(f"/approvals/{call}/decision", json={"status": "approved", "decided_by": "a"})
    # Woken by the decision, long before the wait's own 30 s.
    assert (await asyncio.wait_for(waiting, 10)).json()["status"] == "approved"
    assert value(await scrape(client), waiters) == before

    streams = "agent_runtime_event_stream_clients"
    hub = app.state.hub
    opened = value(await scrape(client), streams)
    with hub.subscribe():
        assert value(await scrape(client), streams) == opened + 1
    assert value(await scrape(client), streams) == opened


async def test_the_pool_gauges_describe_the_connection(client, app, backend):
    samples = await scrape(client)

    size = value(samples, "agent_runtime_db_pool_size")
    if backend.name == "sqlite":
        assert size == 1
    else:
        assert 1 <= size <= app.state.settings.db_pool_max_size
    assert 0 <= value(samples, "agent_runtime_db_pool_in_use") <= size
    assert value(samples, "agent_runtime_db_pool_waiting") == 0


async def test_pool_stats_count_the_callers_waiting_for_a_connection(backend):
    # The event hub reads the log through the same pool now and then: it may be
    # one more waiter, and hold the connection for a moment after.
    app = create_app(Settings(db_url=backend.url, db_pool_min_size=1, db_pool_max_size=1))
    async with LifespanManager(app):
        connection = Tortoise.get_connection(backend.name)
        if backend.name == "postgres":
            pool = connection._pool
            held = await pool.acquire()
            blocked = asyncio.ensure_future(pool.acquire())
            await asyncio.sleep(0.1)
            try:
                size, in_use, waiting = pool_stats(connection)
            finally:
                await pool.release(held)
                await pool.release(await blocked)
        else:
            lock = connection._lock
            await lock.acquire()
            blocked = asyncio.create_task(lock.acquire())
            await asyncio.sleep(0.1)
            try:
                size, in_use, waiting = pool_stats(connection)
            finally:
                lock.release()
                await blocked
                lock.release()
        assert (size, in_use) == (1, 1)
        assert waiting >= 1
        for _ in range(100):
            if pool_stats(connection) == (1, 0, 0):
                break
            await asyncio.sleep(0.02)
        assert pool_stats(connection) == (1, 0, 0)


async def test_pending_approvals_are_nan_while_the_database_does_not_answer(backend, monkeypatch):
    from agent_runtime.core import metrics_collect as collect

    async def unreachable(db):
        raise ConnectionRefusedError("database down")

    app = create_app(Settings(db_url=backend.url))
    async with LifespanManager(app):
        monkeypatch.setattr(collect, "pending_approval_stats", unreachable)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            samples = await scrape(client)

    assert math.isnan(value(samples, "agent_runtime_approvals_pending"))
    assert value(samples, "agent_runtime_db_pool_size") >= 1


async def test_retention_runs_are_counted_by_outcome(backend):
    name = "agent_runtime_retention_runs_total"
    app = create_app(Settings(db_url=backend.url, retention_interval_seconds=0.05))
    async with LifespanManager(app):
        await truncate(Tortoise.get_connection(backend.name))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            before = value(await scrape(client), name, outcome="ok")
            for _ in range(100):
                if value(await scrape(client), name, outcome="ok") >= before + 2:
                    break
                await asyncio.sleep(0.05)
            assert value(await scrape(client), name, outcome="ok") >= before + 2


# -- authentication -------------------------------------------------------------------

KEY, METRICS_KEY = "api-key-1", "metrics-key-2"


@pytest.mark.parametrize(
    ("api_key", "metrics_key", "expected"),
    [
        # (header sent, status) for each setting
        (
            KEY,
            None,
            {None: 401, f"Bearer {KEY}": 200, f"Bearer {METRICS_KEY}": 401, "Bearer x": 401},
        ),
        (
            KEY,
            METRICS_KEY,
            {None: 401, f"Bearer {KEY}": 200, f"Bearer {METRICS_KEY}": 200, "Bearer x": 401},
        ),
        (
            None,
            METRICS_KEY,
            {None: 401, f"Bearer {KEY}": 401, f"Bearer {METRICS_KEY}": 200, "Bearer x": 401},
        ),
        (None, None, {None: 200, "Bearer x": 200}),
    ],
    ids=["api-key", "both-keys", "metrics-key", "no-key"],
)
async def test_metrics_needs_the_api_key_or_the_metrics_key(
    backend, api_key, metrics_key, expected
):
    app = create_app(Settings(db_url=backend.url, api_key=api_key, metrics_key=metrics_key))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for authorization, status in expected.items():
                headers = {} if authorization is None else {"Authorization": authorization}
                response = await client.get("/metrics", headers=headers)
                assert response.status_code == status, (authorization, response.text)
                if status == 401:
                    assert response.json()["error"]["code"] == "unauthorized"
            # The metrics key opens /metrics only (its role: 403 elsewhere); health
            # stays public.
            metrics_only = {"Authorization": f"Bearer {METRICS_KEY}"}
            sessions = await client.get("/sessions", headers=metrics_only)
            assert sessions.status_code == (403 if metrics_key else 401 if api_key else 200)
            assert (await client.get("/health/live")).status_code == 200


def test_the_metrics_key_is_a_secret_setting(monkeypatch):
    monkeypatch.setenv("AGENT_RUNTIME__METRICS_KEY", METRICS_KEY)

    settings = Settings(db_url="sqlite://")

    assert settings.metrics_key is not None
    assert settings.metrics_key.get_secret_value() == METRICS_KEY
    assert METRICS_KEY not in repr(settings)
