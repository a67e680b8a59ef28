"""Console log-in sessions and the cookie signing keys, on every backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tortoise import Tortoise

from agent_runtime.services._common import request_transaction
from agent_runtime.services.console_sessions import (
    ConsoleLogin,
    console_login,
    end_console_session,
    rotate_signing_key,
    signing_keys,
    start_console_session,
)
from agent_runtime.services.reviewers import add_reviewer
from agent_runtime.timeutils import utc_now
from models import ConsoleKey, ConsoleSession

HOUR = timedelta(hours=1)


async def _reviewer(db, name: str = "alice") -> str:
    await add_reviewer(db, name, "correct horse battery")
    return name


async def test_a_started_session_logs_its_reviewer_in_with_a_csrf_token(db):
    token = await start_console_session(db, await _reviewer(db), HOUR)

    login = await console_login(db, token)

    assert isinstance(login, ConsoleLogin)
    assert login.reviewer == "alice"
    assert len(login.csrf_token) >= 32
    assert login.csrf_token != token


async def test_each_session_has_its_own_token_and_csrf_token(db):
    name = await _reviewer(db)
    first = await start_console_session(db, name, HOUR)
    second = await start_console_session(db, name, HOUR)

    first_login, second_login = await console_login(db, first), await console_login(db, second)

    assert first != second
    assert first_login is not None and second_login is not None
    assert first_login.csrf_token != second_login.csrf_token


async def test_the_database_holds_no_token_that_logs_in(db):
    token = await start_console_session(db, await _reviewer(db), HOUR)

    stored = await ConsoleSession.all().using_db(db).values_list("token_hash", flat=True)

    assert token not in stored
    assert [await console_login(db, str(value)) for value in stored] == [None]


async def test_an_unknown_token_logs_nobody_in(db):
    await start_console_session(db, await _reviewer(db), HOUR)

    assert await console_login(db, "made-up-token") is None
    assert await console_login(db, "") is None


async def test_an_ended_session_logs_nobody_in_and_others_stay(db):
    name = await _reviewer(db)
    ended = await start_console_session(db, name, HOUR)
    kept = await start_console_session(db, name, HOUR)

    await end_console_session(db, ended)

    assert await console_login(db, ended) is None
    assert await console_login(db, kept) is not None


async def test_ending_an_unknown_session_is_harmless(db):
    await end_console_session(db, "made-up-token")


async def test_an_expired_session_logs_nobody_in(db):
    token = await start_console_session(db, await _reviewer(db), HOUR)
    await ConsoleSession.all().using_db(db).update(expires_at=utc_now() - timedelta(seconds=1))

    assert await console_login(db, token) is None


async def test_a_session_born_expired_logs_nobody_in(db):
    token = await start_console_session(db, await _reviewer(db), timedelta(seconds=-1))

    assert await console_login(db, token) is None


async def test_starting_a_session_drops_the_expired_ones(db):
    name = await _reviewer(db)
    await start_console_session(db, name, HOUR)
    await ConsoleSession.all().using_db(db).update(expires_at=utc_now() - timedelta(seconds=1))

    live = await start_console_session(db, name, HOUR)

    assert await ConsoleSession.all().using_db(db).count() == 1
    assert await console_login(db, live) is not None


async def test_the_first_call_creates_one_signing_key_and_later_calls_return_it(db):
    first = await signing_keys(db)
    again = await signing_keys(db)

    assert len(first) == 1
    assert len(first[0]) == 64
    assert again == first
    assert await ConsoleKey.all().using_db(db).count() == 1


async def test_concurrent_first_calls_agree_on_a_single_key(db):
    results = await asyncio.gather(*(signing_keys(db) for _ in range(8)))

    assert all(keys == results[0] for keys in results), results
    assert len(results[0]) == 1
    assert await ConsoleKey.all().using_db(db).count() == 1


async def test_a_request_that_loses_the_race_for_the_first_key_still_gets_it(db, backend):
    # Another worker creates the first key while a request (one transaction, no
    # savepoints) looks for it: the request must not fail, nor make a second key.
    connection = Tortoise.get_connection(backend.database.dialect)

    async def in_a_request() -> list[str]:
        async with connection._in_transaction() as tx:
            with request_transaction(tx):
                return await signing_keys(tx)

    async with connection._in_transaction() as other_worker:
        created = await signing_keys(other_worker)  # not committed yet
        request = asyncio.create_task(in_a_request())
        await asyncio.sleep(0.3)  # the request finds no key and tries to create it

    assert await request == created
    assert await signing_keys(db) == created


async def test_a_rotation_adds_a_new_signing_key_and_keeps_the_previous_one(db):
    (original,) = await signing_keys(db)

    kept = await rotate_signing_key(db)
    keys = await signing_keys(db)

    assert kept == 2
    assert len(keys) == 2
    assert keys[0] == original
    assert keys[1] != original


async def test_a_second_rotation_drops_the_oldest_key(db):
    (original,) = await signing_keys(db)
    await rotate_signing_key(db)
    previous = (await signing_keys(db))[-1]

    kept = await rotate_signing_key(db)
    keys = await signing_keys(db)

    assert kept == 2
    assert original not in keys
    assert keys[0] == previous
    assert keys[1] not in (original, previous)


async def test_rotating_on_a_new_database_leaves_two_keys(db):
    kept = await rotate_signing_key(db)

    assert kept == 2
    assert len(await signing_keys(db)) == 2
