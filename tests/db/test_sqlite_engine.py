"""The SQLite engine: pragmas, BEGIN IMMEDIATE, and surviving a failed COMMIT."""

from __future__ import annotations

import sqlite3

import pytest
from tortoise import Tortoise

from agent_runtime.db.config import tortoise_config
from agent_runtime.db.urls import parse_db_url

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
async def sqlite_db(backend):
    await Tortoise.init(config=tortoise_config(backend.database), _enable_global_fallback=True)
    yield Tortoise.get_connection("sqlite")
    await Tortoise.close_connections()


async def test_live_connection_has_all_five_pragmas(sqlite_db):
    values = {}
    for pragma in (
        "journal_mode",
        "synchronous",
        "cache_size",
        "temp_store",
        "busy_timeout",
        "foreign_keys",
    ):
        rows = await sqlite_db.execute_query_dict(f"PRAGMA {pragma}")
        values[pragma] = next(iter(rows[0].values()))

    # synchronous NORMAL = 1, temp_store MEMORY = 2
    assert values == {
        "journal_mode": "wal",
        "synchronous": 1,
        "cache_size": -64000,
        "temp_store": 2,
        "busy_timeout": 30000,
        "foreign_keys": 1,
    }


async def test_transactions_take_the_write_lock_at_begin(sqlite_db, backend):
    path = parse_db_url(backend.url).sqlite_path
    async with sqlite_db._in_transaction():
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            # A deferred BEGIN would not have locked anything yet.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


async def test_a_failed_commit_rolls_back_and_the_connection_keeps_working(sqlite_db):
    await sqlite_db.execute_script(
        "CREATE TABLE IF NOT EXISTS probe_parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE IF NOT EXISTS probe_child (id INTEGER PRIMARY KEY, parent_id INTEGER "
        "REFERENCES probe_parent(id) DEFERRABLE INITIALLY DEFERRED);"
    )
    try:
        with pytest.raises(sqlite3.IntegrityError):
            async with sqlite_db._in_transaction() as tx:
                await tx.execute_insert("INSERT INTO probe_child (parent_id) VALUES (?)", [42])

        async with sqlite_db._in_transaction() as tx:
            await tx.execute_insert("INSERT INTO probe_parent (id) VALUES (?)", [1])
        rows = await sqlite_db.execute_query_dict("SELECT count(*) AS n FROM probe_child")
        assert rows == [{"n": 0}]
    finally:
        await sqlite_db.execute_script("DROP TABLE probe_child; DROP TABLE probe_parent;")
