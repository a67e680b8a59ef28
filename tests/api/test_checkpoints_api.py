"""LangGraph checkpoints over REST (api/routes/checkpoints.py), through the app with
its lifespan, on every backend (PgBouncer included): what is stored reads back byte
for byte, unknown is 404, bad input 422 with nothing stored, pages follow their
cursor through a metadata filter, each role gets what it may do, and a 2xx has
committed."""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

import asyncpg
import httpx
import pytest

from agent_runtime.services import api_keys as api_key_service
from agent_runtime.services import reviewers as reviewer_service
from tests.fixtures.backends import Backend, truncate
from tests.fixtures.remote import app_client

BLOB = bytes(range(256))  # every byte value, NUL included


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def checkpoint(checkpoint_id: str, **extra: Any) -> dict[str, Any]:
    return {"checkpoint_id": checkpoint_id, "type": "msgpack", "checkpoint": b64(BLOB), **extra}


def write(idx: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "idx": idx,
        "task_id": "task-1",
        "channel": "ch",
        "type": "msgpack",
        "blob": b64(BLOB),
    } | extra


async def put(client: httpx.AsyncClient, thread: str, checkpoint_id: str, **extra: Any) -> None:
    response = await client.put(
        f"/sessions/{thread}/checkpoints", json=checkpoint(checkpoint_id, **extra)
    )
    assert response.status_code == 200, response.text


async def test_a_checkpoint_and_its_writes_read_back_byte_for_byte(client):
    stored = await client.put(
        "/sessions/t1/checkpoints",
        json=checkpoint("c1", checkpoint_ns="", metadata={"source": "input", "step": -1}),
    )
    await put(client, "t1", "c2", parent_checkpoint_id="c1", metadata={"step": 0})
    writes = await client.post(
        "/sessions/t1/checkpoints/writes",
        json={"checkpoint_id": "c2", "writes": [write(1), write(0, task_path="~p"), write(-1)]},
    )

    assert stored.status_code == 200
    assert stored.json() == {"thread_id": "t1", "checkpoint_ns": "", "checkpoint_id": "c1"}
    assert writes.status_code == 204
    latest = (await client.get("/sessions/t1/checkpoints/latest")).json()
    assert (latest["checkpoint_id"], latest["parent_checkpoint_id"]) == ("c2", "c1")
    assert base64.b64decode(latest["checkpoint"]) == BLOB
    assert latest["metadata"] == {"step": 0}
    assert [(w["task_path"], w["idx"]) for w in latest["writes"]] == [("", -1), ("", 1), ("~p", 0)]
    assert all(base64.b64decode(w["blob"]) == BLOB for w in latest["writes"])
    first = await client.get("/sessions/t1/checkpoints/latest", params={"checkpoint_id": "c1"})
    assert first.json()["metadata"] == {"source": "input", "step": -1}
    assert first.json()["writes"] == []
    assert (await client.get("/sessions/t1")).status_code == 200  # the thread is a session


async def test_writes_are_kept_or_with_replace_replaced(client):
    await put(client, "t1", "c1")
    path = "/sessions/t1/checkpoints/writes"
    await client.post(path, json={"checkpoint_id": "c1", "writes": [write(0, channel="a")]})
    await client.post(path, json={"checkpoint_id": "c1", "writes": [write(0, channel="b")]})
    kept = (await client.get("/sessions/t1/checkpoints/latest")).json()["writes"]
    await client.post(
        path, json={"checkpoint_id": "c1", "writes": [write(0, channel="c")], "replace": True}
    )
    replaced = (await client.get("/sessions/t1/checkpoints/latest")).json()["writes"]

    assert [w["channel"] for w in kept] == ["a"]
    assert [w["channel"] for w in replaced] == ["c"]


@pytest.mark.parametrize(
    "params",
    [{}, {"checkpoint_ns": "child:1"}, {"checkpoint_id": "c9"}],
    ids=["thread", "namespace", "checkpoint"],
)
async def test_latest_is_404_when_there_is_no_such_checkpoint(client, params):
    await put(client, "t1", "c1")
    thread = "nope" if not params else "t1"

    response = await client.get(f"/sessions/{thread}/checkpoints/latest", params=params)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


CP = "/sessions/t1/checkpoints"
BAD = [
    ("PUT", CP, None, checkpoint("c1", checkpoint="not base64!")),
    ("PUT", CP, None, checkpoint("c1", checkpoint=b64(b"x")[:-1])),  # unpadded
    ("PUT", CP, None, checkpoint("c1", checkpoint=123)),
    ("PUT", CP, None, checkpoint("a/b")),
    ("PUT", CP, None, checkpoint("")),
    ("PUT", CP, None, checkpoint("c" * 256)),
    ("PUT", CP, None, checkpoint("c1", parent_checkpoint_id="..")),
    ("PUT", CP, None, checkpoint("c1", checkpoint_ns="ns\x00")),
    ("PUT", CP, None, checkpoint("c1", type="t" * 51)),
    ("PUT", CP, None, checkpoint("c1", metadata=[1])),
    ("PUT", CP, None, checkpoint("c1", metadata={"x": float("inf")})),
    ("PUT", CP, None, checkpoint("c1", unknown=1)),
    ("PUT", "/sessions/line%0Abreak/checkpoints", None, checkpoint("c1")),
    ("POST", f"{CP}/writes", None, {"checkpoint_id": "c1", "writes": [write(blob="%%")]}),
    ("POST", f"{CP}/writes", None, {"checkpoint_id": "c1", "writes": [write(idx="0")]}),
    ("POST", f"{CP}/writes", None, {"checkpoint_id": "c1", "writes": [write(idx=2**31)]}),
    ("POST", f"{CP}/writes", None, {"checkpoint_id": "c1", "writes": [write(task_id="a/b")]}),
    ("GET", "/checkpoints", {"limit": 0}, None),
    ("GET", "/checkpoints", {"limit": 501}, None),
    ("GET", "/checkpoints", {"limit": "x"}, None),
    ("GET", "/checkpoints", {"cursor": "garbage"}, None),
    ("GET", "/checkpoints", {"cursor": b64(b'["checkpoints",["c1",-1]]')}, None),
    ("GET", "/checkpoints", {"cursor": b64(b'["sessions",["c1",1]]')}, None),
    ("GET", "/checkpoints", {"metadata": "{"}, None),
    ("GET", "/checkpoints", {"metadata": "[1]"}, None),
    ("GET", "/checkpoints", {"thread_id": "t" * 256}, None),
    ("GET", f"{CP}/latest", {"checkpoint_ns": "n" * 1001}, None),
    ("POST", "/checkpoints/prune", None, {"thread_ids": ["t1"], "keep": -1}),
    ("POST", "/checkpoints/prune", None, {"thread_ids": "t1"}),
    ("POST", "/checkpoints/delete-for-runs", None, {"run_ids": [1]}),
    ("POST", f"{CP}/copy", None, {"target_thread_id": "a/b"}),
]


async def test_bad_input_is_422_and_stores_nothing(client):
    await put(client, "t1", "c0")
    before = (await client.get("/checkpoints")).json()

    for method, path, params, body in BAD:
        response = await client.request(
            method,
            path,
            params=params,
            content=None if body is None else json.dumps(body),
            headers={"content-type": "application/json"},
        )

        assert response.status_code == 422, (method, path, params, body, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_input" and error["details"], error
    assert (await client.get("/checkpoints")).json() == before


async def test_pages_follow_their_cursor_through_a_metadata_filter(client):
    for i in range(7):  # ids sort as they were made, as LangGraph's do
        await put(
            client, "t1", f"c{i}", metadata={"source": "loop" if i % 3 else "input", "step": i}
        )
    await put(client, "t2", "c9", metadata={"source": "input"})
    wanted = json.dumps({"source": "input"})

    pages, cursor = [], None
    while True:
        params = {"thread_id": "t1", "metadata": wanted, "limit": 2}
        response = await client.get(
            "/checkpoints", params=params | ({"cursor": cursor} if cursor else {})
        )
        assert response.status_code == 200
        page = response.json()
        pages.append([item["checkpoint_id"] for item in page["items"]])
        if (cursor := page["next_cursor"]) is None:
            break

    assert [c for page in pages for c in page] == ["c6", "c3", "c0"]  # newest first
    assert len(pages) == 4 and [] in pages  # a page of rows that all fail the filter
    everything = (await client.get("/checkpoints", params={"metadata": wanted})).json()
    assert [(i["thread_id"], i["checkpoint_id"]) for i in everything["items"]] == [
        ("t2", "c9"),
        ("t1", "c6"),
        ("t1", "c3"),
        ("t1", "c0"),
    ]
    assert everything["next_cursor"] is None
    older = (await client.get("/checkpoints", params={"thread_id": "t1", "before": "c3"})).json()
    assert [i["checkpoint_id"] for i in older["items"]] == ["c2", "c1", "c0"]


async def test_delete_copy_prune_and_delete_for_runs(client):
    for i in range(3):
        await put(client, "t1", f"c{i}", metadata={"run_id": f"r{i}"})
        await put(client, "t1", f"c{i}", checkpoint_ns="child:1")

    copied = await client.post("/sessions/t1/checkpoints/copy", json={"target_thread_id": "t2"})
    pruned = await client.post("/checkpoints/prune", json={"thread_ids": ["t1"], "keep": 1})
    for_runs = await client.post("/checkpoints/delete-for-runs", json={"run_ids": ["r0", "r1"]})
    deleted = await client.delete("/sessions/t1/checkpoints")

    assert copied.json() == {"copied": 6}
    assert pruned.json() == {"deleted": 4}  # two namespaces: one checkpoint each stays
    assert for_runs.json() == {"deleted": 2}  # of t2 (t1's were pruned)
    assert deleted.status_code == 204
    left = (await client.get("/checkpoints")).json()["items"]
    assert sorted((i["thread_id"], i["checkpoint_ns"], i["checkpoint_id"]) for i in left) == [
        ("t2", "", "c2"),
        ("t2", "child:1", "c0"),
        ("t2", "child:1", "c1"),
        ("t2", "child:1", "c2"),
    ]
    assert (await client.get("/sessions/t1")).status_code == 200  # the session stays


async def committed(backend: Backend, sql: str) -> list[tuple[Any, ...]]:
    """Rows read on a connection of our own: what other connections see."""
    if backend.dialect == "sqlite":
        with sqlite3.connect(backend.url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql).fetchall()
    conn = await asyncpg.connect(backend.direct)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_a_2xx_has_committed(client, backend):
    await put(client, "t1", "c1")
    await client.post(
        "/sessions/t1/checkpoints/writes", json={"checkpoint_id": "c1", "writes": [write()]}
    )

    assert await committed(backend, "SELECT checkpoint_id FROM langgraph_checkpoints") == [("c1",)]
    assert await committed(backend, "SELECT channel FROM langgraph_checkpoint_writes") == [("ch",)]
    assert await committed(backend, "SELECT id FROM sessions") == [("t1",)]


async def test_each_role_gets_what_it_may_do(backend):
    async with app_client(backend, api_key="admin-key") as (_, db, app):
        await reviewer_service.add_reviewer(db, "alice", "correct horse battery")
        tokens = {}
        for role in ("agent", "reviewer", "metrics"):
            reviewer = "alice" if role == "reviewer" else None
            tokens[role], _ = await api_key_service.add_api_key(db, role, role, reviewer=reviewer)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

            async def status(role: str, method: str, path: str, body: Any = None) -> int:
                headers = {"Authorization": f"Bearer {tokens[role]}"}
                return (await http.request(method, path, json=body, headers=headers)).status_code

            # An agent writes, reads and prunes its own checkpoints.
            assert await status("agent", "PUT", CP, checkpoint("c1")) == 200
            assert await status("agent", "GET", f"{CP}/latest") == 200
            prune = {"thread_ids": ["t1"], "keep": 1}
            assert await status("agent", "POST", "/checkpoints/prune", prune) == 200
            assert await status("agent", "DELETE", CP) == 204
            # A reviewer reads only; a metrics key nothing.
            assert await status("reviewer", "GET", "/checkpoints") == 200
            assert await status("reviewer", "PUT", CP, checkpoint("c2")) == 403
            assert await status("reviewer", "POST", "/checkpoints/prune", prune) == 403
            assert await status("reviewer", "DELETE", CP) == 403
            assert await status("metrics", "GET", "/checkpoints") == 403
        await truncate(db)  # a key left in the run's database would turn authentication on


async def test_the_client_iterates_across_short_pages_up_to_the_limit(backend):
    async with app_client(backend) as (client, _, _):
        for i in range(6):
            await client.put_checkpoint(
                "t1", f"c{i}", type="bytes", checkpoint=BLOB, metadata={"even": i % 2 == 0}
            )
        await client.put_checkpoint_writes(
            "t1", "c4", [{"idx": 0, "task_id": "k", "channel": "ch", "type": None, "blob": b""}]
        )

        async def ids(**query: Any) -> list[str]:
            return [c.checkpoint_id async for c in client.iter_checkpoints(**query)]

        assert await ids(thread_id="t1", metadata={"even": True}, page_size=1) == ["c4", "c2", "c0"]
        assert await ids(metadata={"even": True}, limit=2, page_size=1) == ["c4", "c2"]
        assert await ids(limit=0) == []
        assert await ids(before="c2") == ["c1", "c0"]
        latest = await client.get_checkpoint("t1")
        assert latest is not None and latest.checkpoint == BLOB
        with_write = await client.get_checkpoint("t1", checkpoint_id="c4")
        assert with_write is not None
        assert [(w.channel, w.blob, w.type) for w in with_write.writes] == [("ch", b"", None)]
        assert await client.get_checkpoint("t1", checkpoint_ns="other") is None
        assert await client.copy_thread_checkpoints("t1", "t2") == 6
        assert await client.prune_checkpoints(["t2"], keep=2) == 4
        assert await client.delete_checkpoints_for_runs(["none"]) == 0
        await client.delete_thread_checkpoints("t1")
        assert await ids() == ["c5", "c4"]


async def test_the_client_is_refused_bad_input_as_in_process(backend):
    from agent_runtime.errors import InvalidInputError

    async with app_client(backend) as (client, _, _):
        with pytest.raises(InvalidInputError) as refused:
            await client.put_checkpoint("t1", "a/b", type="bytes", checkpoint=b"")
        assert refused.value.details[0]["loc"] == ["body", "checkpoint_id"]
        with pytest.raises(InvalidInputError, match="limit"):
            await anext(client.iter_checkpoints(limit=-1))
