"""Fixtures of the CLI tests."""

from __future__ import annotations

import pytest

from tests.fixtures.backends import BACKENDS, Databases


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, databases: Databases) -> str:
    """A new, empty database of each backend (not migrated)."""
    if request.param == "postgres":
        request.applymarker("postgres")
    return databases.empty(request.param)
