"""docs/langgraph.md, "Over REST": the example runs as written against a real uvicorn
server (on a database migrated for it) and prints what the page shows."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph")

from agent_runtime.services import database
from tests.fixtures.servers import start_uvicorn
from tests.integrations.test_langgraph_docs import example


async def test_the_rest_example_runs_against_a_server(backend, databases, tmp_path, capsys):
    main, shown = example("Over REST")
    url = databases.empty(backend.name)
    await database.init_database(url)
    try:
        await database.init_db()  # what `agent-runtime migrate` does
    finally:
        await database.close_db()
    server = start_uvicorn(url, tmp_path)
    try:
        await main(url=server.url)
    finally:
        server.stop()

    assert capsys.readouterr().out.splitlines() == shown
