"""Reviewer accounts and login throttling, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent_runtime.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
)
from agent_runtime.services.console_sessions import console_login, start_console_session
from agent_runtime.services.reviewers import (
    LOGIN_FAILURES_ALLOWED,
    LOGIN_WINDOW,
    add_reviewer,
    authenticate,
    list_reviewers,
    remove_reviewer,
    set_reviewer_password,
)
from agent_runtime.timeutils import utc_now
from models import ConsoleSession, LoginFailure, Reviewer

PASSWORD = "correct horse battery"
HERE = "192.0.2.1"
ELSEWHERE = "198.51.100.7"


async def _fail_logins(db, name: str, address: str, times: int = LOGIN_FAILURES_ALLOWED) -> None:
    for _ in range(times):
        with pytest.raises(UnauthorizedError):
            await authenticate(db, name, "wrong password", address=address)


async def test_the_password_is_stored_only_as_an_argon2id_hash(db):
    await add_reviewer(db, "alice", PASSWORD)

    stored = await Reviewer.filter(name="alice").using_db(db).get()

    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash


async def test_added_reviewers_are_listed_by_name_with_their_dates(db):
    before = utc_now()
    await add_reviewer(db, "bob", PASSWORD)
    await add_reviewer(db, "alice", PASSWORD)

    reviewers = await list_reviewers(db)

    assert [r["name"] for r in reviewers] == ["alice", "bob"]
    for r in reviewers:
        assert before - timedelta(seconds=1) <= r["created_at"] <= utc_now()
        assert r["password_changed_at"] == r["created_at"]


async def test_the_right_password_authenticates(db):
    await add_reviewer(db, "alice", PASSWORD)

    assert await authenticate(db, "alice", PASSWORD, address=HERE) == "alice"


async def test_a_wrong_password_and_an_unknown_name_fail_alike(db):
    await add_reviewer(db, "alice", PASSWORD)

    with pytest.raises(UnauthorizedError) as wrong_password:
        await authenticate(db, "alice", "not the password", address=HERE)
    with pytest.raises(UnauthorizedError) as unknown_name:
        await authenticate(db, "mallory", PASSWORD, address=HERE)

    assert str(wrong_password.value) == str(unknown_name.value) == "wrong name or password"


@pytest.mark.parametrize("name", [None, 42, ""])
async def test_a_name_that_is_not_a_string_is_just_wrong(db, name):
    with pytest.raises(UnauthorizedError):
        await authenticate(db, name, PASSWORD, address=HERE)


async def test_after_five_failures_for_a_name_even_the_right_password_is_refused(db):
    await add_reviewer(db, "alice", PASSWORD)
    await _fail_logins(db, "alice", HERE)

    with pytest.raises(TooManyRequestsError) as throttled:
        await authenticate(db, "alice", PASSWORD, address=ELSEWHERE)

    assert throttled.value.status_code == 429
    assert 0 < throttled.value.retry_after <= LOGIN_WINDOW.total_seconds() + 1


async def test_four_failures_still_let_the_right_password_in(db):
    await add_reviewer(db, "alice", PASSWORD)
    await _fail_logins(db, "alice", HERE, times=LOGIN_FAILURES_ALLOWED - 1)

    assert await authenticate(db, "alice", PASSWORD, address=HERE) == "alice"


async def test_five_failures_from_one_address_throttle_it_whatever_the_name(db):
    await add_reviewer(db, "alice", PASSWORD)
    for i in range(LOGIN_FAILURES_ALLOWED):
        with pytest.raises(UnauthorizedError):
            await authenticate(db, f"guess{i}", "whatever-password", address=HERE)

    with pytest.raises(TooManyRequestsError) as throttled:
        await authenticate(db, "alice", PASSWORD, address=HERE)

    assert throttled.value.retry_after > 0


async def test_failures_of_other_names_and_other_addresses_do_not_count(db):
    await add_reviewer(db, "alice", PASSWORD)
    await _fail_logins(db, "bob", ELSEWHERE)

    assert await authenticate(db, "alice", PASSWORD, address=HERE) == "alice"
    with pytest.raises(TooManyRequestsError):
        await authenticate(db, "alice", PASSWORD, address=ELSEWHERE)
    with pytest.raises(TooManyRequestsError):
        await authenticate(db, "bob", PASSWORD, address=HERE)


async def test_failures_older_than_the_window_do_not_count(db):
    await add_reviewer(db, "alice", PASSWORD)
    await _fail_logins(db, "alice", HERE)
    await (
        LoginFailure.all()
        .using_db(db)
        .update(failed_at=utc_now() - LOGIN_WINDOW - timedelta(seconds=1))
    )

    assert await authenticate(db, "alice", PASSWORD, address=HERE) == "alice"


async def test_retry_after_counts_down_from_the_oldest_failure_in_the_window(db):
    await _fail_logins(db, "alice", HERE)
    await (
        LoginFailure.all()
        .using_db(db)
        .update(failed_at=utc_now() - LOGIN_WINDOW + timedelta(minutes=1))
    )

    with pytest.raises(TooManyRequestsError) as throttled:
        await authenticate(db, "alice", PASSWORD, address=HERE)

    assert 55 <= throttled.value.retry_after <= 62


async def test_a_changed_password_ends_the_reviewers_sessions_and_the_old_one_fails(db):
    await add_reviewer(db, "alice", PASSWORD)
    await add_reviewer(db, "bob", PASSWORD)
    alices = await start_console_session(db, "alice", timedelta(hours=1))
    bobs = await start_console_session(db, "bob", timedelta(hours=1))

    await set_reviewer_password(db, "alice", "a brand new password")

    assert await console_login(db, alices) is None
    assert await console_login(db, bobs) is not None
    with pytest.raises(UnauthorizedError):
        await authenticate(db, "alice", PASSWORD, address=HERE)
    assert await authenticate(db, "alice", "a brand new password", address=HERE) == "alice"
    listed = {r["name"]: r for r in await list_reviewers(db)}
    assert listed["alice"]["password_changed_at"] > listed["alice"]["created_at"]


async def test_setting_the_password_of_an_unknown_reviewer_is_not_found(db):
    with pytest.raises(NotFoundError, match="no reviewer named 'nobody'"):
        await set_reviewer_password(db, "nobody", PASSWORD)


async def test_a_removed_reviewer_loses_their_sessions_and_cannot_log_in(db):
    await add_reviewer(db, "alice", PASSWORD)
    token = await start_console_session(db, "alice", timedelta(hours=1))

    assert await remove_reviewer(db, "alice") is True

    assert await console_login(db, token) is None
    assert await ConsoleSession.all().using_db(db).count() == 0
    assert await list_reviewers(db) == []
    with pytest.raises(UnauthorizedError):
        await authenticate(db, "alice", PASSWORD, address=HERE)


async def test_removing_an_unknown_reviewer_returns_false(db):
    assert await remove_reviewer(db, "nobody") is False


async def test_a_taken_name_is_a_conflict_and_keeps_the_first_password(db):
    await add_reviewer(db, "alice", PASSWORD)

    with pytest.raises(ConflictError, match="reviewer 'alice' already exists"):
        await add_reviewer(db, "alice", "another password")

    assert await authenticate(db, "alice", PASSWORD, address=HERE) == "alice"
    assert await Reviewer.all().using_db(db).count() == 1


@pytest.mark.parametrize("password", ["", "short", "7chars!", "x" * 1025, None])
async def test_a_password_of_the_wrong_length_is_refused(db, password):
    with pytest.raises(InvalidInputError, match="a password has 8 to 1024 characters"):
        await add_reviewer(db, "alice", password)

    assert await list_reviewers(db) == []


async def test_a_short_new_password_is_refused_and_the_old_one_kept(db):
    await add_reviewer(db, "alice", PASSWORD)

    with pytest.raises(InvalidInputError):
        await set_reviewer_password(db, "alice", "short")

    assert await authenticate(db, "alice", PASSWORD, address=HERE) == "alice"


@pytest.mark.parametrize("name", ["", "x" * 256])
async def test_an_unstorable_name_is_refused(db, name):
    with pytest.raises(InvalidInputError):
        await add_reviewer(db, name, PASSWORD)
