"""The API tests also run through PgBouncer (transaction mode): `backend` is
"sqlite", "postgres" and "pgbouncer" here (see tests/fixtures/backends.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.backends import (
    POOLED_BACKENDS,
    Backend,
    Databases,
    no_prepared_statement_errors,
)


@pytest.fixture(params=POOLED_BACKENDS)
def backend(request: pytest.FixtureRequest, databases: Databases) -> Iterator[Backend]:
    """The backend under test, with a database migrated by `aerich upgrade`; through
    PgBouncer, nothing in this process may log a prepared-statement error."""
    with no_prepared_statement_errors(databases.backend(request.param)) as backend:
        yield backend
