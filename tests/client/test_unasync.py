"""The sync client is the async one, unasynced (see scripts/unasync.py)."""

from __future__ import annotations

from scripts.unasync import ASYNC, SYNC, unasync


def test_the_sync_client_is_generated_from_the_async_one():
    expected = unasync(ASYNC.read_text(encoding="utf-8"))

    assert SYNC.read_text(encoding="utf-8") == expected, (
        "agent_runtime/client/_sync.py is stale: run `python -m scripts.unasync`"
    )
