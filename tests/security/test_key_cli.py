"""`agent-runtime key`: add prints the token once, list never shows one, revoke
closes the key on every worker of a running server within seconds."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from agent_runtime.services import reviewers as reviewer_service
from tests.cli.helpers import agent_runtime, ok, one_line_error
from tests.cli.test_reviewer_cli import in_database
from tests.fixtures.backends import Backend, truncate
from tests.fixtures.servers import start_uvicorn

WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
TOKEN = re.compile(r"ark_[A-Za-z0-9_-]{43}")
REVOKED_WITHIN = 5.0  # seconds: the promise of docs/security.md


@pytest.fixture
def url(backend: Backend) -> str:
    """The backend's migrated database, emptied, with the reviewer account alice."""
    in_database(backend.url, truncate)
    in_database(
        backend.url, lambda db: reviewer_service.add_reviewer(db, "alice", "correct horse battery")
    )
    return backend.url


def add_key(url: str, *args: str) -> str:
    """The token `key add` printed: alone, on the last line of stdout."""
    out = ok(agent_runtime("key", "add", *args, url=url))
    last = out.rstrip("\n").splitlines()[-1]
    assert TOKEN.fullmatch(last), out
    return last


def test_add_prints_the_token_alone_on_the_last_line_and_list_never_shows_it(url):
    agent = add_key(url, "runner-1", "--role", "agent")
    reviewer = add_key(url, "alice-laptop", "--role", "reviewer", "--reviewer", " Alice")

    listed = ok(agent_runtime("key", "list", url=url))

    assert agent != reviewer
    assert agent not in listed and reviewer not in listed
    assert re.fullmatch(
        f"alice-laptop  reviewer  reviewer alice  created {WHEN}  last used never\n"
        f"runner-1  agent  created {WHEN}  last used never\n",
        listed,
    ), listed


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["k", "--role", "reviewer"], "--role reviewer needs --reviewer"),
        (["k", "--role", "agent", "--reviewer", "alice"], "--reviewer only goes with"),
        (["k", "--role", "reviewer", "--reviewer", "bob"], "no reviewer named 'bob'"),
    ],
)
def test_a_key_that_cannot_be_made_is_refused_in_one_line(url, args, says):
    line = one_line_error(agent_runtime("key", "add", *args, url=url))

    assert says in line
    assert ok(agent_runtime("key", "list", url=url)).strip() == "no keys"


def test_a_name_is_taken_once_and_a_revoked_key_stays_listed(url):
    add_key(url, "k", "--role", "admin")

    assert "already exists" in one_line_error(
        agent_runtime("key", "add", "k", "--role", "metrics", url=url)
    )
    assert "no key named 'nope'" in one_line_error(agent_runtime("key", "revoke", "nope", url=url))
    assert ok(agent_runtime("key", "revoke", "k", url=url)).strip() == "revoked key k"
    listed = ok(agent_runtime("key", "list", url=url))
    assert re.fullmatch(f"k  admin  created {WHEN}  last used never  revoked {WHEN}\n", listed)
    assert "no key named 'k'" in one_line_error(agent_runtime("key", "revoke", "k", url=url))


def test_an_unknown_role_is_refused_by_the_command(url):
    result = agent_runtime("key", "add", "k", "--role", "root", url=url)

    assert result.returncode == 2 and "'root' is not one of" in result.stderr


def test_live_a_revoked_key_answers_401_on_every_worker_within_5_seconds(
    url: str, backend: Backend, tmp_path: Path
):
    server = start_uvicorn(backend, tmp_path, workers=2)
    try:
        token = add_key(url, "runner", "--role", "agent")
        auth = {"Authorization": f"Bearer {token}"}

        def statuses() -> set[int]:
            # A fresh connection each: the kernel spreads them over the workers.
            return {
                httpx.get(f"{server.url}/sessions", headers=auth, timeout=10).status_code
                for _ in range(16)
            }

        deadline = time.monotonic() + REVOKED_WITHIN
        while statuses() != {200}:  # the new key reaches every worker as fast
            assert time.monotonic() < deadline
        assert "last used " + "never" not in ok(agent_runtime("key", "list", url=url))

        ok(agent_runtime("key", "revoke", "runner", url=url))
        revoked = time.monotonic()
        while (seen := statuses()) != {401}:
            assert time.monotonic() - revoked < REVOKED_WITHIN, seen
        # Revoking the last key does not turn authentication off.
        assert httpx.get(f"{server.url}/sessions", timeout=10).status_code == 401
    finally:
        server.stop()
