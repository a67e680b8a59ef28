"""One reviewer name, one account, on every backend: a name is normalised once
(`normalize_reviewer_name`: NFKC, case-folded, without surrounding whitespace), and
that form is what is stored, kept unique, and looked up to log in, change a password,
remove a reviewer or start a console session; the command line obeys it too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from agent_runtime.errors import ConflictError, InvalidInputError, UnauthorizedError
from agent_runtime.services import reviewers
from agent_runtime.services.console_sessions import console_login, start_console_session
from agent_runtime.services.reviewers import (
    add_reviewer,
    authenticate,
    list_reviewers,
    normalize_reviewer_name,
    remove_reviewer,
    set_reviewer_password,
)
from agent_runtime.timeutils import utc_now
from models import Reviewer
from models.limits import NAME_MAX
from tests.cli.helpers import agent_runtime, ok, one_line_error
from tests.cli.test_reviewer_cli import in_database, logs_in
from tests.console.http import PASSWORD, SESSION_COOKIE, Console, open_console
from tests.fixtures.backends import Backend, truncate

HERE = "192.0.2.1"
NEW_PASSWORD = "a brand new password"
# Each one the account "reviewer1": case, surrounding whitespace, full-width forms.
VARIANTS = [
    "Reviewer1",
    "REVIEWER1",
    " reviewer1",
    "reviewer1\t",
    "\u00a0Reviewer1\u3000",  # no-break and ideographic spaces
    "\uff52\uff45\uff56\uff49\uff45\uff57\uff45\uff52\uff11",  # full-width "reviewer1"
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_normalises_to_one_name(variant):
    assert normalize_reviewer_name(variant) == "reviewer1"


def test_normalisation_is_idempotent_and_folds_beyond_ascii():
    assert normalize_reviewer_name("Stra\u00dfe") == "strasse"
    assert normalize_reviewer_name("\ufb01ona") == "fiona"  # the "fi" ligature
    assert normalize_reviewer_name("\u212bngstr\u00f6m") == normalize_reviewer_name(
        "A\u030angstro\u0308m"
    )
    for name in ["Stra\u00dfe", " \u212b ", "\u1e9e", "\u0130stanbul", *VARIANTS]:
        once = normalize_reviewer_name(name)
        assert normalize_reviewer_name(once) == once


# --- the services -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
async def test_adding_a_variant_of_a_taken_name_is_a_conflict(db, variant):
    await add_reviewer(db, "reviewer1", PASSWORD)

    with pytest.raises(ConflictError, match="reviewer 'reviewer1' already exists"):
        await add_reviewer(db, variant, "another password")

    assert [r["name"] for r in await list_reviewers(db)] == ["reviewer1"]
    assert await authenticate(db, "reviewer1", PASSWORD, address=HERE) == "reviewer1"


async def test_the_name_is_stored_normalised(db):
    added = await add_reviewer(db, "  Reviewer1 ", PASSWORD)

    assert added["name"] == "reviewer1"
    assert await Reviewer.filter(name="reviewer1").using_db(db).count() == 1
    with pytest.raises(ConflictError):
        await add_reviewer(db, "reviewer1", PASSWORD)


@pytest.mark.parametrize("name", ["   ", "\t\u3000"])
async def test_a_name_of_whitespace_only_is_refused(db, name):
    with pytest.raises(InvalidInputError):
        await add_reviewer(db, name, PASSWORD)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_any_variant_logs_in_as_the_one_account(db, variant):
    await add_reviewer(db, "Reviewer1", PASSWORD)

    assert await authenticate(db, variant, PASSWORD, address=HERE) == "reviewer1"


async def test_any_variant_changes_the_password_and_removes_the_reviewer(db):
    await add_reviewer(db, "reviewer1", PASSWORD)
    token = await start_console_session(db, " REVIEWER1", timedelta(hours=1))
    login = await console_login(db, token)
    assert login is not None
    assert login.reviewer == "reviewer1"

    await set_reviewer_password(db, "Reviewer1 ", NEW_PASSWORD)

    assert await console_login(db, token) is None
    assert await authenticate(db, "reviewer1", NEW_PASSWORD, address=HERE) == "reviewer1"
    assert await remove_reviewer(db, "\uff32eviewer1") is True
    assert await list_reviewers(db) == []
    assert await remove_reviewer(db, "reviewer1") is False


@pytest.mark.parametrize("typed", ["alice\x00", "al\ud800ice", "alice" + " x" * NAME_MAX, ""])
async def test_a_name_that_cannot_be_an_account_is_just_wrong(db, typed):
    """Unstorable, over-long or empty: refused like a wrong password (and counted),
    never an error of the database."""
    await add_reviewer(db, "alice", PASSWORD)

    with pytest.raises(UnauthorizedError):
        await authenticate(db, typed, PASSWORD, address=HERE)

    assert await authenticate(db, "alice", PASSWORD, address="192.0.2.2") == "alice"


async def test_a_name_stored_before_normalisation_is_still_one_account(db):
    """A reviewer added before names were normalised (stored as typed) can still log
    in and be managed under that exact name, and no variant of it can be added."""
    now = utc_now()
    await Reviewer.create(
        name="Alice",
        password_hash=await reviewers._hash(PASSWORD),
        created_at=now,
        password_changed_at=now,
        using_db=db,
    )

    assert await authenticate(db, "Alice", PASSWORD, address=HERE) == "Alice"
    with pytest.raises(ConflictError):
        await add_reviewer(db, "alice", PASSWORD)
    await set_reviewer_password(db, "Alice", NEW_PASSWORD)
    assert await authenticate(db, "Alice", NEW_PASSWORD, address=HERE) == "Alice"
    assert await remove_reviewer(db, "Alice") is True


# --- the login form ---------------------------------------------------------------------


@pytest.fixture
async def web(backend) -> AsyncIterator[Console]:
    async with open_console(backend) as console:
        yield console


@pytest.mark.parametrize("typed", [" REVIEWER1", "Reviewer1", "reviewer1 "])
async def test_the_login_form_takes_any_variant_of_the_name(web, typed):
    await web.add_reviewer("reviewer1")
    visitor = web.agent()

    answer = await visitor.login(typed, PASSWORD)
    inbox = await visitor.get("/console/")

    assert answer.status_code == 303, answer.text
    assert visitor.session_cookie is not None
    assert inbox.status_code == 200
    assert "reviewer1" in inbox.text


async def test_a_variant_cannot_be_added_beside_an_account_through_the_app(web):
    await web.add_reviewer("reviewer1")

    with pytest.raises(ConflictError):
        await web.add_reviewer("Reviewer1", "another password")
    wrong = await web.agent().login("REVIEWER1", "another password")

    assert wrong.status_code == 401
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def url(backend: Backend) -> str:
    """The backend's migrated database, emptied."""
    in_database(backend.url, truncate)
    return backend.url


def add(url: str, name: str, password: str = PASSWORD):
    return agent_runtime("reviewer", "add", name, "--password-stdin", url=url, input=password)


def test_the_cli_stores_the_normalised_name_and_refuses_a_variant(url):
    added = ok(add(url, " Reviewer1"))
    again = add(url, "REVIEWER1", NEW_PASSWORD)
    listed = ok(agent_runtime("reviewer", "list", url=url)).splitlines()

    assert added.strip() == "added reviewer reviewer1"
    assert again.returncode == 1
    assert one_line_error(again) == "agent-runtime: error: reviewer 'reviewer1' already exists"
    assert [line.split()[0] for line in listed] == ["reviewer1"]
    assert logs_in(url, "reviewer1", PASSWORD)
    assert not logs_in(url, "reviewer1", NEW_PASSWORD)


def test_the_cli_manages_a_reviewer_under_any_variant(url):
    ok(add(url, "reviewer1"))

    ok(
        agent_runtime(
            "reviewer", "set-password", "Reviewer1", "--password-stdin", url=url, input=NEW_PASSWORD
        )
    )
    assert logs_in(url, "reviewer1", NEW_PASSWORD)
    ok(agent_runtime("reviewer", "remove", " REVIEWER1", url=url))

    assert ok(agent_runtime("reviewer", "list", url=url)).strip() == "no reviewers"
