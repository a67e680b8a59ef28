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
"""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.backends",
    "tests.fixtures.apps",
    "tests.fixtures.servers",
    "tests.fixtures.remote",
]
