"""`write_transaction` on SQLite: a transaction whose BEGIN IMMEDIATE travels with its
first statement and whose `execute_many` travels with the next statement or the COMMIT,
with Tortoise's results, errors, savepoints and rollbacks."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError, TransactionManagementError

from agent_runtime.db.config import tortoise_config
from agent_runtime.db.sqlite_engine import LazySqliteTransaction, write_transaction
from agent_runtime.db.urls import parse_db_url
from agent_runtime.services import save as save_service
from agent_runtime.services.message_cache import message_cache

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

NOW = datetime(2026, 1, 2, tzinfo=UTC)
DDL = "CREATE TABLE IF NOT EXISTS lazy_probe (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)"


@pytest.fixture
async def sqlite_db(backend) -> AsyncIterator[BaseDBAsyncClient]:
    await Tortoise.init(config=tortoise_config(backend.database), _enable_global_fallback=True)
    connection = Tortoise.get_connection("sqlite")
    await connection.execute_script(DDL)
    await connection.execute_script("DELETE FROM lazy_probe")
    try:
        yield connection
    finally:
        await connection.execute_script("DROP TABLE IF EXISTS lazy_probe")
        await Tortoise.close_connections()


@pytest.fixture
def trips(sqlite_db, monkeypatch) -> list[Any]:
    """Every trip to aiosqlite's thread, counted."""
    counted: list[Any] = []
    connection = sqlite_db._connection
    original = connection._execute

    async def counting(fn, *args, **kwargs):
        counted.append(fn)
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(connection, "_execute", counting)
    return counted


def locked_for_others(backend) -> bool:
    """Whether another connection is kept from writing (BEGIN IMMEDIATE fails)."""
    other = sqlite3.connect(parse_db_url(backend.url).sqlite_path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


async def values(db) -> list[str]:
    rows = await db.execute_query_dict("SELECT v FROM lazy_probe ORDER BY id")
    return [row["v"] for row in rows]


async def test_it_is_a_lazy_transaction_on_sqlite_only_for_the_connection_itself(sqlite_db):
    async with write_transaction(sqlite_db) as tx:
        assert isinstance(tx, LazySqliteTransaction)
        # A transaction in it is a savepoint, as Tortoise's.
        async with write_transaction(tx) as nested:
            assert not isinstance(nested, LazySqliteTransaction)


async def test_begin_immediate_goes_with_the_first_statement_in_one_trip(sqlite_db, backend, trips):
    async with write_transaction(sqlite_db) as tx:
        assert trips == [] and not locked_for_others(backend)
        rows = await tx.execute_query_dict("SELECT count(*) AS n FROM lazy_probe")
        assert rows == [{"n": 0}]
        assert len(trips) == 1
        # Even a first statement that only reads took the write lock: BEGIN IMMEDIATE.
        assert locked_for_others(backend)
    assert len(trips) == 2  # and the COMMIT
    assert not locked_for_others(backend)


async def test_a_transaction_without_statements_costs_no_trip(sqlite_db, trips):
    async with write_transaction(sqlite_db):
        pass
    with pytest.raises(RuntimeError):
        async with write_transaction(sqlite_db):
            raise RuntimeError("before any statement")
    assert trips == []
    assert not sqlite_db._connection.in_transaction


async def test_execute_many_goes_with_the_next_statement(sqlite_db, trips):
    async with write_transaction(sqlite_db) as tx:
        await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["a"], ["b"]])
        assert trips == []
        count, rows = await tx.execute_query("SELECT v FROM lazy_probe ORDER BY id")
        assert [row["v"] for row in rows] == ["a", "b"] and count == 2
        assert len(trips) == 1
        await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["c"]])
    assert len(trips) == 2  # "c" went with the COMMIT
    assert await values(sqlite_db) == ["a", "b", "c"]


async def test_results_are_tortoises(sqlite_db):
    async with write_transaction(sqlite_db) as tx:
        new_id = await tx.execute_insert("INSERT INTO lazy_probe (v) VALUES (?)", ["x"])
        changed, rows = await tx.execute_query(
            "UPDATE lazy_probe SET v = 'y' WHERE id = ?", [new_id]
        )
        dicts = await tx.execute_query_dict("SELECT id, v FROM lazy_probe WHERE v = ?", ["y"])
        nul = await tx.execute_query_dict("SELECT 'a\x00b' = ('a' || CHAR(0) || 'b') AS same")
    assert (changed, list(rows)) == (1, [])
    assert dicts == [{"id": new_id, "v": "y"}]
    assert nul == [{"same": 1}]


async def test_an_error_of_a_queued_statement_is_raised_by_the_next_and_rolls_back(sqlite_db):
    await sqlite_db.execute_query("INSERT INTO lazy_probe (v) VALUES ('taken')")
    with pytest.raises(IntegrityError):
        async with write_transaction(sqlite_db) as tx:
            await tx.execute_query("INSERT INTO lazy_probe (v) VALUES ('first')")
            await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["taken"]])
            await tx.execute_query("SELECT 1")
    assert await values(sqlite_db) == ["taken"]
    assert not sqlite_db._connection.in_transaction


async def test_an_error_of_a_queued_statement_at_commit_rolls_back(sqlite_db):
    await sqlite_db.execute_query("INSERT INTO lazy_probe (v) VALUES ('taken')")
    with pytest.raises(IntegrityError):
        async with write_transaction(sqlite_db) as tx:
            await tx.execute_query("INSERT INTO lazy_probe (v) VALUES ('first')")
            await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["taken"]])
    assert await values(sqlite_db) == ["taken"]
    assert not sqlite_db._connection.in_transaction
    async with write_transaction(sqlite_db) as tx:  # the connection keeps working
        await tx.execute_query("INSERT INTO lazy_probe (v) VALUES ('after')")
    assert await values(sqlite_db) == ["taken", "after"]


async def test_a_rollback_drops_what_is_queued(sqlite_db, trips):
    with pytest.raises(RuntimeError):
        async with write_transaction(sqlite_db) as tx:
            await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["never"]])
            raise RuntimeError("changed my mind")
    assert trips == []
    with pytest.raises(RuntimeError):
        async with write_transaction(sqlite_db) as tx:
            await tx.execute_query("INSERT INTO lazy_probe (v) VALUES ('sent')")
            await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["queued"]])
            raise RuntimeError("changed my mind")
    assert await values(sqlite_db) == []


async def test_a_savepoint_first_begins_the_transaction(sqlite_db, backend):
    async with write_transaction(sqlite_db) as tx:
        await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["outer"]])
        with pytest.raises(RuntimeError):
            async with write_transaction(tx) as nested:
                assert locked_for_others(backend)
                await nested.execute_query("INSERT INTO lazy_probe (v) VALUES ('inner')")
                raise RuntimeError("undo the savepoint only")
        async with write_transaction(tx) as nested:
            await nested.execute_query("INSERT INTO lazy_probe (v) VALUES ('kept')")
    assert await values(sqlite_db) == ["outer", "kept"]


async def test_inside_a_savepoint_nothing_waits_so_its_rollback_undoes_it(sqlite_db):
    """Tortoise's ORM inside `in_transaction()` writes through the outer transaction
    (the nested context does not replace it): what it writes after the savepoint
    must be sent before the savepoint is rolled back."""
    async with write_transaction(sqlite_db) as tx:
        await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["before"]])
        with pytest.raises(RuntimeError):
            async with write_transaction(tx):
                await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["inside"]])
                raise RuntimeError("roll back to the savepoint")
        await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["after"]])
    assert await values(sqlite_db) == ["before", "after"]


async def test_a_begin_that_cannot_lock_raises_and_leaves_nothing_open(sqlite_db, backend):
    other = sqlite3.connect(parse_db_url(backend.url).sqlite_path, isolation_level=None)
    await sqlite_db.execute_script("PRAGMA busy_timeout=50")
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(TransactionManagementError, match="locked"):
            async with write_transaction(sqlite_db) as tx:
                await tx.execute_many("INSERT INTO lazy_probe (v) VALUES (?)", [["q"]])
                await tx.execute_query("INSERT INTO lazy_probe (v) VALUES ('x')")
        assert not sqlite_db._connection.in_transaction
        other.execute("ROLLBACK")
        async with write_transaction(sqlite_db) as tx:
            await tx.execute_query("INSERT INTO lazy_probe (v) VALUES ('later')")
    finally:
        other.close()
        await sqlite_db.execute_script("PRAGMA busy_timeout=30000")
    assert await values(sqlite_db) == ["later"]


async def test_a_task_cancelled_during_its_first_trip_still_rolls_back(sqlite_db):
    started = asyncio.Event()

    async def write() -> None:
        async with write_transaction(sqlite_db) as tx:
            started.set()
            await tx.execute_query("INSERT INTO lazy_probe (v) VALUES ('cancelled')")
            await asyncio.sleep(10)

    task = asyncio.create_task(write())
    await started.wait()
    await asyncio.sleep(0)  # the first trip is on its way to the thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await values(sqlite_db) == []
    assert not sqlite_db._connection.in_transaction


async def test_a_save_of_the_service_api_takes_three_trips(sqlite_db, trips):
    """With this process's copy current: BEGIN + the conditional UPDATE, the messages'
    INSERT + the event's, the COMMIT."""
    messages = [{"role": "user", "content": "hi"}]
    message_cache.discard("lazy-s1")
    await save_service.save_session(sqlite_db, "lazy-s1", messages, NOW)
    trips.clear()

    messages = [*messages, {"role": "assistant", "content": "hello"}]
    await save_service.save_session(sqlite_db, "lazy-s1", messages, NOW)

    assert len(trips) == 3
    rows = await sqlite_db.execute_query_dict(
        "SELECT content FROM messages WHERE session_id = 'lazy-s1' ORDER BY position"
    )
    assert [row["content"] for row in rows] == ["hi", "hello"]
