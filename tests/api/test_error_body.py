"""Every 422 has one body, `{"error": {"code", "message", "details": [{loc, msg, type}]}}`,
whichever layer refused the input (request schema, service rule, undecodable body)."""

from __future__ import annotations

import pytest

BAD = [
    # refused by the request schema
    ("POST", "/sessions/s1", [{"role": "robot"}]),
    ("POST", "/sessions/s1", [{"role": "user", "content": "a\x00b"}]),
    (
        "POST",
        "/sessions/s1/messages",
        [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "x\x00": 1}}]}],
    ),
    ("POST", "/approvals", {"session_id": "s", "call_id": "c", "tool_name": "t", "x": 1}),
    ("POST", "/approvals/c/decision", {"status": "pending"}),
    ("GET", "/approvals?status=maybe", None),
    # refused by the service (path parameters are checked there)
    ("GET", "/sessions/a%00b", None),
    ("GET", "/approvals/a%00b", None),
    ("GET", "/sessions?cursor=bm9wZQ", None),
]


@pytest.mark.parametrize(("method", "url", "body"), BAD)
async def test_every_422_has_the_same_body_with_details(client, method, url, body):
    response = await client.request(method, url, json=body)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["message"]
    assert error["details"], error
    for detail in error["details"]:
        assert set(detail) == {"loc", "msg", "type"}
        assert isinstance(detail["loc"], list) and detail["msg"]


async def test_undecodable_body_is_422_with_details(client):
    response = await client.post(
        "/sessions/s1",
        content=b'[{"role": "user", "content": "\xff"}]',
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["type"] == "value_error"


async def test_a_service_rule_names_the_path_parameter(client):
    response = await client.get("/sessions/a%00b")

    detail = response.json()["error"]["details"][0]
    assert detail["loc"] == ["session_id"] and "NUL" in detail["msg"]
