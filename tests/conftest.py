"""Test backends: every test that takes `backend` runs on SQLite and PostgreSQL; the
API tests and the concurrent-writers test also through PgBouncer ("pgbouncer").

Environment:
  AGENT_RUNTIME_TEST_BACKENDS   comma list, default "sqlite,postgres,pgbouncer"
  AGENT_RUNTIME_TEST_PG_URL     admin URL used to create a scratch database,
                                default postgresql://postgres@127.0.0.1:5432/postgres
  AGENT_RUNTIME_TEST_PGBOUNCER_URL  PgBouncer (transaction mode) in front of that
                                server; unset: a private one is started if the
                                pgbouncer binary is installed
  AGENT_RUNTIME_TEST_REQUIRE_PG "1": an unreachable PostgreSQL or PgBouncer, or any
                                skipped PostgreSQL or PgBouncer test, fails the run
                                (CI sets it)
Schemas come from running the real `aerich upgrade`, never generate_schemas.

Tiers (docs/testing.md): the markers are declared once, in pyproject.toml, and given
here, by path or by fixture, not test by test (`tier_markers`):

  postgres     a `backend` (or other database) parameter "postgres" or "pgbouncer",
               or in POSTGRES_TESTS (an unmarked test on PostgreSQL fails)
  pgbouncer    a parameter "pgbouncer"
  uvicorn      takes a fixture that starts a server process (SERVER_FIXTURES), is in a
               module that starts one itself (it imports `start_uvicorn`), or is in
               SERVER_TESTS (runs `agent-runtime serve`)
  browser      BROWSER_PATHS (headless Chromium)
  reliability  tests/reliability
  soak         a reliability module whose load lasts AGENT_RUNTIME_SOAK_SECONDS

`make test-fast` deselects them all and runs SQLite only. Under pytest-xdist
(`make test`: `--dist loadgroup`) the tests of each XDIST_GROUPS group run one after
the other on one worker; every other test goes to whichever worker is free.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest_plugins = [
    "tests.fixtures.backends",
    "tests.fixtures.apps",
    "tests.fixtures.servers",
    "tests.fixtures.remote",
]

# Fixtures that start a real server process (uvicorn), directly or through another one.
SERVER_FIXTURES = frozenset({"server", "start_server", "live_servers", "console"})
# Tests that start `agent-runtime serve` themselves, outside those fixtures and modules.
SERVER_TESTS = (
    "tests/cli/test_commands.py::test_serve_runs_uvicorn_with_flags_",
    "tests/security/test_connections.py::test_serve_",
    "tests/security/test_forwarded.py::test_live_",
    "tests/security/test_key_cli.py::test_live_",
    "tests/events/test_parallel_writers.py::test_live_",
)
# Tests on PostgreSQL without a backend parameter (Databases.require checks the list).
POSTGRES_TESTS = (
    "tests/db/test_migrations.py::test_a_database_error_is_not_taken_for_an_empty_database",
)
BROWSER_PATHS = ("tests/console/test_console_browser.py",)
RELIABILITY_PATHS = ("tests/reliability/",)
# xdist groups (`--dist loadgroup`, see `pytest_xdist_make_scheduler`): the tests of a
# group run on one worker, one after the other, while the other workers take the rest.
#   reliability: load, crash and outage tests. They measure latencies, count server
#     processes and connections, start their own PostgreSQL clusters: one at a time,
#     they keep to the shared server's 100 connections and stay off each other's cores.
#   browser: one uvicorn server per backend and one Chromium pool for the module
#     (module-scoped fixtures: split over workers they would be started on each).
XDIST_GROUPS = {
    "tests/reliability/": "reliability",
    "tests/console/test_console_browser.py": "browser",
}
POSTGRES, PGBOUNCER = "postgres", "pgbouncer"  # as in tests/fixtures/backends.py


def _needs_postgres(params: dict[str, object]) -> set[str]:
    """The backends "postgres" (and "pgbouncer") a parameter puts the test on: a
    `backend`, an `empty_url`, a legacy source `(kind, variant)`..."""
    found: set[str] = set()
    for value in params.values():
        name = value[0] if isinstance(value, tuple) and value else value
        if name in (POSTGRES, PGBOUNCER):
            # Through PgBouncer is PostgreSQL too: skipped under REQUIRE_PG fails the run.
            found |= {POSTGRES, name}
    return found


def tier_markers(item: pytest.Item) -> set[str]:
    """The tier markers of a test, from its path, its module and its fixtures."""
    path = item.nodeid
    markers: set[str] = set()
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        markers |= _needs_postgres(callspec.params)
    if path.startswith(POSTGRES_TESTS):
        markers.add(POSTGRES)
    module = getattr(item, "module", None)
    if (
        SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        or getattr(module, "start_uvicorn", None) is not None
        or path.startswith(SERVER_TESTS)
    ):
        markers.add("uvicorn")
    if path.startswith(BROWSER_PATHS):
        markers |= {"browser", "uvicorn"}
    if path.startswith(RELIABILITY_PATHS):
        markers.add("reliability")
        if getattr(module, "SOAK_SECONDS", None) is not None:
            markers.add("soak")
    return markers


def xdist_group(nodeid: str) -> str | None:
    """The xdist group of a test, from its path (None: any worker)."""
    for prefix, group in XDIST_GROUPS.items():
        if nodeid.startswith(prefix):
            return group
    return None


# tryfirst: before `-m` deselects.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        present = {mark.name for mark in item.iter_markers()}
        for name in sorted(tier_markers(item) - present):
            item.add_marker(name)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` by path (XDIST_GROUPS), on the controller.

    pytest-xdist's own loadgroup reads `xdist_group` marks on the workers and appends
    `@group` to the node ids, which pytest 9.2 no longer lets it do: the groups are
    silently ignored (pytest-dev/pytest-xdist#1386). The controller sees only node
    ids, so the groups are paths here. A test whose node id does carry `@group` (a
    fixed xdist, an `xdist_group` mark) keeps that group; groups run largest first."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class PathGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            if scope != nodeid:
                return scope
            return xdist_group(nodeid) or nodeid

    return PathGroupScheduling(config, log)
