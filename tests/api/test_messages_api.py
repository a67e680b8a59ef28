"""Paging through a long conversation by position."""

from __future__ import annotations

import pytest

CONVERSATION = [{"role": "user", "content": f"m{i}"} for i in range(25)]


@pytest.fixture
async def long_session(client):
    assert (await client.post("/sessions/s1", json=CONVERSATION)).status_code == 200


def contents(page: dict) -> list[str]:
    return [m["content"] for m in page["items"]]


async def test_forward_pages_cover_the_conversation_in_order(client, long_session):
    seen, cursor = [], None
    while True:
        params = {"limit": 10, **({"after": cursor} if cursor else {})}
        page = (await client.get("/sessions/s1/messages", params=params)).json()
        seen += contents(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [m["content"] for m in CONVERSATION]


async def test_latest_n_messages_in_one_request_then_page_backward(client, long_session):
    latest = (await client.get("/sessions/s1/messages", params={"latest": True, "limit": 5})).json()
    before = (
        await client.get(
            "/sessions/s1/messages", params={"before": latest["prev_cursor"], "limit": 5}
        )
    ).json()

    assert contents(latest) == ["m20", "m21", "m22", "m23", "m24"]
    assert [m["position"] for m in latest["items"]] == [20, 21, 22, 23, 24]
    assert latest["next_cursor"] is None
    assert contents(before) == ["m15", "m16", "m17", "m18", "m19"]
    assert before["next_cursor"] is not None


async def test_first_page_has_no_previous_and_last_page_no_next(client, long_session):
    first = (await client.get("/sessions/s1/messages", params={"limit": 25})).json()

    assert contents(first) == [m["content"] for m in CONVERSATION]
    assert first["prev_cursor"] is None
    assert first["next_cursor"] is None


async def test_message_pages_keep_the_loaded_message_shape(client):
    await client.post(
        "/sessions/s1",
        json=[
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
        ],
    )

    page = (await client.get("/sessions/s1/messages")).json()

    assert page["items"] == [
        {
            "role": "assistant",
            "content": None,
            "position": 0,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"after": "garbage"},
        {"before": "x", "after": "y"},
        {"latest": True, "after": "WyJtZXNzYWdlcyIsM10"},
    ],
)
async def test_bad_paging_is_422(client, long_session, params):
    response = await client.get("/sessions/s1/messages", params=params)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


async def test_unknown_session_messages_are_404(client):
    assert (await client.get("/sessions/nope/messages")).status_code == 404


async def test_appending_over_http_adds_messages_and_bumps_the_etag(client, long_session):
    before = (await client.get("/sessions/s1")).headers["etag"]

    response = await client.post(
        "/sessions/s1/messages", json=[{"role": "assistant", "content": "appended"}]
    )
    stale = await client.post(
        "/sessions/s1/messages",
        json=[{"role": "user", "content": "x"}],
        headers={"If-Match": before},
    )

    assert response.status_code == 200
    assert response.headers["etag"] != before
    assert stale.status_code == 412
    latest = await client.get("/sessions/s1/messages", params={"latest": True, "limit": 1})
    assert latest.json()["items"] == [{"role": "assistant", "content": "appended", "position": 25}]


async def test_appending_invalid_messages_is_422(client, long_session):
    response = await client.post("/sessions/s1/messages", json=[{"role": "robot"}])

    assert response.status_code == 422
    assert len((await client.get("/sessions/s1")).json()["messages"]) == 25


async def test_page_items_carry_token_count_and_metadata_when_set(client):
    await client.post(
        "/sessions/s1",
        json=[
            {"role": "user", "content": "plain"},
            {
                "role": "assistant",
                "content": "hi",
                "token_count": 3,
                "metadata": {"item": {"type": "message", "nested": [1, None, {"ü": "🌍"}]}},
            },
        ],
    )

    page = (await client.get("/sessions/s1/messages")).json()
    latest = (await client.get("/sessions/s1/messages", params={"latest": True, "limit": 1})).json()

    assert page["items"] == [
        {"role": "user", "content": "plain", "position": 0},
        {
            "role": "assistant",
            "content": "hi",
            "position": 1,
            "token_count": 3,
            "metadata": {"item": {"type": "message", "nested": [1, None, {"ü": "🌍"}]}},
        },
    ]
    assert latest["items"] == page["items"][1:]
    # The legacy document keeps its shape: no token_count, no metadata.
    loaded = (await client.get("/sessions/s1")).json()
    assert loaded["messages"] == [
        {"role": "user", "content": "plain"},
        {"role": "assistant", "content": "hi"},
    ]


async def test_a_page_carries_the_sessions_version_for_a_conditional_write(client, long_session):
    loaded = await client.get("/sessions/s1")
    page = await client.get("/sessions/s1/messages", params={"latest": True, "limit": 1})
    assert page.headers["etag"] == loaded.headers["etag"]

    appended = await client.post("/sessions/s1/messages", json=[{"role": "user", "content": "x"}])
    assert appended.headers["etag"] != page.headers["etag"]
    stale = await client.post(
        "/sessions/s1", json=CONVERSATION, headers={"If-Match": page.headers["etag"]}
    )
    assert stale.status_code == 412
    again = await client.get("/sessions/s1/messages", params={"latest": True, "limit": 1})
    assert again.headers["etag"] == appended.headers["etag"]
    assert contents(again.json()) == ["x"]
