"""The PostgreSQL engine: a connection goes back to the pool without asyncpg's reset
query (one round trip fewer per statement), and still without a transaction left
open, on PostgreSQL and through PgBouncer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from tortoise import Tortoise

from agent_runtime.db.config import tortoise_config
from agent_runtime.db.postgres_engine import PooledConnection
from tests.fixtures.backends import PGBOUNCER, POSTGRES, Backend, Databases

pytestmark = pytest.mark.parametrize("backend", [POSTGRES, PGBOUNCER], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest, databases: Databases) -> Backend:
    return databases.backend(request.param)


@pytest.fixture
async def pg_db(backend: Backend) -> AsyncIterator[Any]:
    """Tortoise on the backend with a pool of one connection (every statement on it)."""
    database = backend.database
    one = replace(database, credentials={**database.credentials, "minsize": 1, "maxsize": 1})
    await Tortoise.init(config=tortoise_config(one), _enable_global_fallback=True)
    db = Tortoise.get_connection("postgres")
    await db.execute_query("SELECT 1")  # the pool exists from here
    yield db
    await Tortoise.close_connections()


async def test_a_statement_outside_a_transaction_is_the_only_query_sent(pg_db):
    sent: list[str] = []
    async with pg_db._pool.acquire() as connection:
        assert isinstance(connection._con, PooledConnection)
        connection.add_query_logger(lambda record: sent.append(record.query))

    await pg_db.execute_query("SELECT 2")
    async with pg_db._in_transaction() as transaction:
        await transaction.execute_query("SELECT 3")

    assert [q for q in sent if q.strip()] == ["SELECT 2", "BEGIN;", "SELECT 3", "COMMIT;"]


async def test_a_transaction_left_open_is_rolled_back_on_release(pg_db):
    async with pg_db._pool.acquire() as connection:
        await connection.execute("BEGIN")
        await connection.execute("CREATE TEMP TABLE IF NOT EXISTS scratch (x int)")

    async with pg_db._pool.acquire() as connection:
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT to_regclass('pg_temp.scratch')") is None
