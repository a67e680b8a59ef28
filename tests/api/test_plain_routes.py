"""The plain handlers of `GET` and `POST /sessions/{id}` (api/routes/sessions.py) answer
exactly as FastAPI's handler of the same route: a query string FastAPI ignores (`?via=
fastapi`) sends a request to FastAPI's handler, so each request is made both ways on the
same starting state and the answers compared."""

from __future__ import annotations

from typing import Any

import pytest

SEED = [{"role": "user", "content": "seed"}]
TWO = [*SEED, {"role": "assistant", "content": "two"}]
BAD_MESSAGE = [{"role": "robot", "content": 3}]
JSON_TYPE = {"content-type": "application/json"}


def _json(body: Any) -> dict[str, Any]:
    return {"json": body}


# (what, seeded first, method, request arguments)
CASES: list[tuple[str, bool, str, dict[str, Any]]] = [
    ("new session", False, "POST", _json(TWO)),
    ("append", True, "POST", _json(TWO)),
    ("edit", True, "POST", _json([{"role": "user", "content": "other"}])),
    ("empty list", True, "POST", _json([])),
    ("if-match current", True, "POST", {**_json(TWO), "headers": {"If-Match": '"1"'}}),
    ("if-match star", True, "POST", {**_json(TWO), "headers": {"If-Match": "*"}}),
    ("if-match stale", True, "POST", {**_json(TWO), "headers": {"If-Match": '"7"'}}),
    ("if-match weak", True, "POST", {**_json(TWO), "headers": {"If-Match": 'W/"1"'}}),
    ("if-match unknown", False, "POST", {**_json(TWO), "headers": {"If-Match": '"1"'}}),
    ("if-match too long", True, "POST", {**_json(TWO), "headers": {"If-Match": "x" * 70}}),
    ("invalid message", True, "POST", _json(BAD_MESSAGE)),
    ("one invalid of two", True, "POST", _json([*SEED, *BAD_MESSAGE])),
    ("not a list", True, "POST", _json({"role": "user"})),
    ("not json", True, "POST", {"content": b"[{", "headers": JSON_TYPE}),
    ("no body", True, "POST", {"content": b"", "headers": JSON_TYPE}),
    ("not utf-8", True, "POST", {"content": b'["\xff"]', "headers": JSON_TYPE}),
    ("text/plain", True, "POST", {"content": b"[]", "headers": {"content-type": "text/plain"}}),
    ("no content type", True, "POST", {"content": b"[]"}),
    ("load", True, "GET", {}),
    ("unknown", False, "GET", {}),
]


def _timeless(body: Any) -> Any:
    """A session's JSON without its timestamps (the two runs happen at different times)."""
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k not in ("last_activity", "created_at")}
    return body


async def _answer(client, seeded: bool, method: str, path: str, arguments: dict[str, Any]):
    await client.delete(path.split("?")[0], params={"hard": "true"})
    if seeded:
        assert (await client.post(path.split("?")[0], json=SEED)).status_code == 200
    response = await client.request(method, path, **arguments)
    loaded = await client.get(path.split("?")[0])
    return (
        response.status_code,
        _timeless(response.json()),
        response.headers.get("etag"),
        response.headers.get("content-type"),
        loaded.status_code,
        _timeless(loaded.json()),
    )


@pytest.mark.parametrize(
    ("seeded", "method", "arguments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_the_plain_handler_answers_as_fastapis(client, seeded, method, arguments):
    plain = await _answer(client, seeded, method, "/sessions/p", arguments)
    fastapi = await _answer(client, seeded, method, "/sessions/p?via=fastapi", arguments)

    assert plain == fastapi


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_id_too_long_is_fastapis_422(client, method):
    response = await client.request(method, "/sessions/" + "x" * 256, json=SEED)

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["path", "session_id"]


async def test_last_activity_in_the_query_is_fastapis(client):
    saved = await client.post("/sessions/p?last_activity=2026-01-02T03:04:05Z", json=SEED)
    refused = await client.post("/sessions/p?last_activity=yesterday", json=SEED)

    assert saved.status_code == 200
    loaded = (await client.get("/sessions/p")).json()
    assert loaded["last_activity"].startswith("2026-01-02T03:04:05")
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["loc"] == ["query", "last_activity"]
