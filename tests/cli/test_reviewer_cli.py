"""`agent-runtime reviewer`: add, list, remove, set-password and rotate-key, on both
backends; passwords from stdin or typed twice; expected failures in one line."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import TypeVar

import pytest
from click.testing import CliRunner
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.cli import cli
from agent_runtime.config import get_settings
from agent_runtime.db.config import tortoise_config
from agent_runtime.db.urls import parse_db_url
from agent_runtime.errors import UnauthorizedError
from agent_runtime.services.console_sessions import (
    console_login,
    signing_keys,
    start_console_session,
)
from agent_runtime.services.reviewers import authenticate
from tests.cli.helpers import agent_runtime, ok, one_line_error
from tests.fixtures.backends import Backend, truncate

T = TypeVar("T")
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new password"
WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def in_database(url: str, work: Callable[[BaseDBAsyncClient], Awaitable[T]]) -> T:
    """`work(db)` on the database at `url`, in this process, between CLI runs."""

    async def go() -> T:
        database = parse_db_url(url)
        await Tortoise.init(config=tortoise_config(database))
        try:
            return await work(Tortoise.get_connection(database.dialect))
        finally:
            await Tortoise.close_connections()

    return asyncio.run(go())


def logs_in(url: str, name: str, password: str) -> bool:
    async def attempt(db: BaseDBAsyncClient) -> bool:
        try:
            return await authenticate(db, name, password, address="192.0.2.1") == name
        except UnauthorizedError:
            return False

    return in_database(url, attempt)


def session_of(url: str, name: str) -> str:
    return in_database(url, lambda db: start_console_session(db, name, timedelta(hours=1)))


def session_is_live(url: str, token: str) -> bool:
    async def check(db: BaseDBAsyncClient) -> bool:
        return await console_login(db, token) is not None

    return in_database(url, check)


@pytest.fixture
def url(backend: Backend) -> str:
    """The backend's migrated database, emptied."""
    in_database(backend.url, truncate)
    return backend.url


def add(url: str, name: str = "alice", password: str = PASSWORD) -> str:
    return ok(agent_runtime("reviewer", "add", name, "--password-stdin", url=url, input=password))


@pytest.mark.parametrize(
    "command", [[], ["add"], ["list"], ["remove"], ["set-password"], ["rotate-key"]]
)
def test_every_reviewer_command_has_help(command):
    result = agent_runtime("reviewer", *command, "--help", url="sqlite://")

    assert result.returncode == 0, result.stderr
    assert "Usage: agent-runtime reviewer" in result.stdout


def test_an_added_reviewer_is_listed_and_can_log_in(url):
    added = agent_runtime("reviewer", "add", "alice", "--password-stdin", url=url, input=PASSWORD)
    listed = ok(agent_runtime("reviewer", "list", url=url))

    assert ok(added).strip() == "added reviewer alice"
    assert re.fullmatch(f"alice  added {WHEN}  password changed {WHEN}\n", listed), listed
    assert logs_in(url, "alice", PASSWORD)


def test_reviewers_are_listed_one_line_each_by_name(url):
    add(url, "bob")
    add(url, "alice")

    listed = ok(agent_runtime("reviewer", "list", url=url)).splitlines()

    assert [line.split()[0] for line in listed] == ["alice", "bob"]


def test_list_says_when_there_are_no_reviewers(url):
    assert ok(agent_runtime("reviewer", "list", url=url)).strip() == "no reviewers"


def test_one_trailing_newline_of_the_piped_password_is_dropped(url):
    add(url, "alice", PASSWORD + "\n")
    add(url, "bob", PASSWORD + " \n\n")

    assert logs_in(url, "alice", PASSWORD)
    assert not logs_in(url, "bob", PASSWORD)
    assert logs_in(url, "bob", PASSWORD + " \n")


def test_adding_a_taken_name_fails_in_one_line_and_keeps_the_first_password(url):
    add(url)

    result = agent_runtime(
        "reviewer", "add", "alice", "--password-stdin", url=url, input=NEW_PASSWORD
    )

    assert result.returncode == 1
    assert one_line_error(result) == "agent-runtime: error: reviewer 'alice' already exists"
    assert logs_in(url, "alice", PASSWORD)


def test_a_too_short_password_fails_in_one_line_and_adds_nobody(url):
    result = agent_runtime("reviewer", "add", "alice", "--password-stdin", url=url, input="short")

    assert result.returncode == 1
    assert "a password has 8 to 1024 characters" in one_line_error(result)
    assert ok(agent_runtime("reviewer", "list", url=url)).strip() == "no reviewers"


def test_set_password_replaces_the_password_and_ends_the_sessions(url):
    add(url)
    token = session_of(url, "alice")

    result = agent_runtime(
        "reviewer", "set-password", "alice", "--password-stdin", url=url, input=NEW_PASSWORD
    )

    assert ok(result).strip() == "password changed for alice; their console sessions ended"
    assert not session_is_live(url, token)
    assert logs_in(url, "alice", NEW_PASSWORD)
    assert not logs_in(url, "alice", PASSWORD)


def test_a_too_short_new_password_fails_in_one_line_and_keeps_the_old_one(url):
    add(url)

    result = agent_runtime(
        "reviewer", "set-password", "alice", "--password-stdin", url=url, input="short"
    )

    assert "a password has 8 to 1024 characters" in one_line_error(result)
    assert logs_in(url, "alice", PASSWORD)


def test_set_password_of_an_unknown_reviewer_fails_in_one_line(url):
    result = agent_runtime(
        "reviewer", "set-password", "bob", "--password-stdin", url=url, input=NEW_PASSWORD
    )

    assert result.returncode == 1
    assert one_line_error(result) == "agent-runtime: error: no reviewer named 'bob'"


def test_remove_deletes_the_reviewer_and_ends_their_sessions(url):
    add(url, "alice")
    add(url, "bob")
    alices, bobs = session_of(url, "alice"), session_of(url, "bob")

    result = agent_runtime("reviewer", "remove", "alice", url=url)

    assert ok(result).strip() == "removed reviewer alice (their console sessions ended)"
    assert [
        line.split()[0] for line in ok(agent_runtime("reviewer", "list", url=url)).splitlines()
    ] == ["bob"]
    assert not session_is_live(url, alices)
    assert session_is_live(url, bobs)
    assert not logs_in(url, "alice", PASSWORD)


def test_removing_an_unknown_reviewer_fails_in_one_line(url):
    result = agent_runtime("reviewer", "remove", "bob", url=url)

    assert result.returncode == 1
    assert one_line_error(result) == "agent-runtime: error: no reviewer named 'bob'"


def test_rotate_key_signs_with_a_new_key_and_keeps_the_previous_one(url):
    (original,) = in_database(url, signing_keys)

    first = agent_runtime("reviewer", "rotate-key", url=url)
    after_first = in_database(url, signing_keys)
    ok(agent_runtime("reviewer", "rotate-key", url=url))
    after_second = in_database(url, signing_keys)

    assert "previous key keep working until the next rotation" in ok(first)
    assert after_first[0] == original and len(after_first) == 2
    assert original not in after_second and after_second[0] == after_first[1]


@pytest.mark.parametrize("command", [["list"], ["remove", "alice"], ["rotate-key"]])
def test_on_a_database_not_yet_migrated_reviewer_commands_say_to_migrate(empty_url, command):
    result = agent_runtime("reviewer", *command, url=empty_url)

    assert result.returncode == 1
    assert "run `agent-runtime migrate` first" in one_line_error(result)


def test_reviewer_commands_fail_in_one_line_when_the_database_is_unreachable():
    result = agent_runtime(
        "reviewer", "list", url="postgresql://postgres@127.0.0.1:9/nowhere", timeout=60
    )

    assert result.returncode == 1
    assert "cannot reach the database" in one_line_error(result)


# Typed passwords: in this process, where click's test runner plays the terminal.


@pytest.fixture
def configured(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AGENT_RUNTIME__DB_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_without_password_stdin_the_password_is_typed_twice_and_not_echoed(configured):
    result = CliRunner().invoke(
        cli, ["reviewer", "add", "alice"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )

    assert result.exit_code == 0, result.output
    assert "added reviewer alice" in result.stdout
    assert result.output.count("Password") == 1
    assert "Repeat for confirmation" in result.output
    assert PASSWORD not in result.output
    assert logs_in(configured, "alice", PASSWORD)


def test_two_different_typed_passwords_add_nobody(configured):
    result = CliRunner().invoke(
        cli, ["reviewer", "add", "alice"], input=f"{PASSWORD}\n{NEW_PASSWORD}\n"
    )

    assert result.exit_code != 0
    assert "do not match" in result.output
    assert not logs_in(configured, "alice", PASSWORD)
    assert not logs_in(configured, "alice", NEW_PASSWORD)
